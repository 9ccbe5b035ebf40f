/* calc N...: prints the sum and the product of its integer arguments. */
#include <stdlib.h>

#include "calc.h"

int main(int argc, char **argv) {
    long values[64];
    int count = 0;
    for (int i = 1; i < argc && count < 64; i++) values[count++] = strtol(argv[i], NULL, 10);
    print_result("sum", sum(values, count));
    print_result("product", product(values, count));
    return 0;
}
