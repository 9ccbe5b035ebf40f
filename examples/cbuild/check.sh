#!/bin/sh
# check.sh PROGRAM: runs the built program on known arguments and compares its output.
expected='sum 12
product 42'
actual=$("$1" 2 3 7) || exit 1
if [ "$actual" != "$expected" ]; then
    printf 'unexpected output from %s:\n%s\n' "$1" "$actual" >&2
    exit 1
fi
echo "check passed: $actual" | tr '\n' ' '
echo
