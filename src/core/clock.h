/* The business clock: wall time that tests can set.
 *
 * Everything that reasons about *calendar* time - quiet hours, dedup windows,
 * rate buckets, quota windows, token expiry - reads dagi_clock_now_ms().  In a
 * build with test hooks the offset can be moved through the test API, so an
 * end-to-end test can jump a day ahead without sleeping.  Socket timeouts use
 * libevent's monotonic timers and are not affected. */
#ifndef DAGI_CLOCK_H
#define DAGI_CLOCK_H

#include <stdint.h>

/* Unix time in milliseconds, plus the test offset. */
int64_t dagi_clock_now_ms(void);
/* Monotonic nanoseconds, for measuring durations (never offset). */
int64_t dagi_clock_mono_ns(void);
/* Moves the business clock; thread safe.  Only test hooks call these. */
void dagi_clock_set_offset_ms(int64_t offset_ms);
int64_t dagi_clock_offset_ms(void);

#endif
