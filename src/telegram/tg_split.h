/* Splitting a long answer into Telegram messages.
 *
 * sendMessage takes at most 4096 characters of text, and Telegram counts
 * characters as UTF-16 code units: a Cyrillic letter (2 bytes of UTF-8) is
 * one, an emoji outside the BMP (4 bytes of UTF-8) is two.  The splitter
 * cuts where a reader would: at a paragraph break (blank line), else a line
 * break, else a sentence end (". ", "! ", "? ", "… ", "。"), else a space,
 * else hard at a code-point boundary, so a UTF-8 sequence or a surrogate
 * pair is never split.  The order is strict: the last paragraph break that
 * fits wins even when a later line break would fill the part more, because
 * a whole paragraph in the next message reads better than one cut in two.
 * Whitespace at each cut is trimmed and empty parts are never produced.
 *
 * Limits: user-perceived characters made of several code points (flags,
 * ZWJ emoji families) may still be cut between code points by a hard cut;
 * and the count is of plain text, so send the parts without parse_mode (or
 * split before adding markup), since entities parsing changes the length.
 *
 * Memory: the result is (offset, length) byte slices into the caller's
 * text, written into the caller's array; nothing is allocated, and the text
 * must outlive the slices.  Pure; safe on any thread. */
#ifndef DAGI_TELEGRAM_TG_SPLIT_H
#define DAGI_TELEGRAM_TG_SPLIT_H

#include <stddef.h>

/* sendMessage's text limit and the limit for media captions. */
#define DAGI_TG_MESSAGE_MAX_UNITS 4096
#define DAGI_TG_CAPTION_MAX_UNITS 1024

struct dagi_tg_slice {
    size_t offset; /* bytes into the text */
    size_t length; /* bytes */
};

/* Splits text[0..len) into parts of at most max_units UTF-16 code units.
 * Writes up to max_parts slices and sets *count.  Returns 0; DAGI_EINVAL
 * when max_units < 2 (an emoji would not fit); DAGI_ETOOBIG when more than
 * max_parts parts would be needed (then *count is untouched), which caps how
 * many messages one answer may become.  Text that is empty or only
 * whitespace gives 0 parts.  Invalid UTF-8 is tolerated: a stray byte
 * counts as one unit and is never joined to its neighbours. */
int dagi_tg_split(const char *text, size_t len, size_t max_units, struct dagi_tg_slice *parts,
                  size_t max_parts, size_t *count);

/* The length of text[0..len) in UTF-16 code units, as Telegram counts it. */
size_t dagi_tg_utf16_units(const char *text, size_t len);

#endif
