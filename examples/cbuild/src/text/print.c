#include <stdio.h>

#include "calc.h"

void print_result(const char *label, long value) {
    printf("%s %ld\n", label, value);
}
