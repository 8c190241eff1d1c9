/* check.h — minimal assertions for the C unit tests in spec/c (one executable per file).
 *
 * CHECK(cond) records a failure with file:line and carries on; CHECK_OK(rc) also prints
 * hrm_last_error(); CHECK_NEAR(a, b, tol) compares doubles. main() ends with
 * `return check_summary("name");`, which prints "N passed, M failed" and returns 1 on failure.
 */
#ifndef HRM_SPEC_CHECK_H
#define HRM_SPEC_CHECK_H

#include <math.h>
#include <stdio.h>
#include "hrm.h"

static int check_passed_, check_failed_;

#define CHECK(cond)                                                        \
   do {                                                                    \
      if (cond) check_passed_++;                                           \
      else { check_failed_++; fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
   } while (0)

#define CHECK_OK(expr)                                                     \
   do {                                                                    \
      int check_rc_ = (expr);                                              \
      if (check_rc_ == HRM_OK) check_passed_++;                            \
      else { check_failed_++; fprintf(stderr, "FAIL %s:%d: %s -> %d: %s\n", __FILE__, __LINE__, \
                                      #expr, check_rc_, hrm_last_error()); } \
   } while (0)

#define CHECK_NEAR(a, b, tol)                                              \
   do {                                                                    \
      double check_a_ = (a), check_b_ = (b);                               \
      if (fabs(check_a_ - check_b_) <= (tol)) check_passed_++;             \
      else { check_failed_++; fprintf(stderr, "FAIL %s:%d: %s = %.9g, %s = %.9g (tol %g)\n", \
                                      __FILE__, __LINE__, #a, check_a_, #b, check_b_, (double)(tol)); } \
   } while (0)

static int check_summary(const char *name) {
   printf("%s: %d passed, %d failed\n", name, check_passed_, check_failed_);
   return check_failed_ ? 1 : 0;
}

#endif
