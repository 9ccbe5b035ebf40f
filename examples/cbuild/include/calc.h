/* The functions the program's modules share. */
#ifndef CALC_H
#define CALC_H

long sum(const long *values, int count);
long product(const long *values, int count);
void print_result(const char *label, long value);

#endif
