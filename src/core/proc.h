/* Facts about this process, read from /proc. */
#ifndef DAGI_PROC_H
#define DAGI_PROC_H

/* Resident set size in bytes, 0 if unknown. */
long dagi_proc_resident_bytes(void);

#endif
