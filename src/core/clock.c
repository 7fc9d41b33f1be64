#include "clock.h"

#include <stdatomic.h>
#include <time.h>

static _Atomic int64_t clock_offset_ms;

int64_t dagi_clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 +
           atomic_load_explicit(&clock_offset_ms, memory_order_relaxed);
}

int64_t dagi_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void dagi_clock_set_offset_ms(int64_t offset_ms)
{
    atomic_store(&clock_offset_ms, offset_ms);
}

int64_t dagi_clock_offset_ms(void)
{
    return atomic_load(&clock_offset_ms);
}
