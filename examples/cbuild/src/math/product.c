#include "calc.h"

long product(const long *values, int count) {
    long total = 1;
    for (int i = 0; i < count; i++) total *= values[i];
    return total;
}
