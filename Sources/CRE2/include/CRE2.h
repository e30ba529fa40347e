// A C interface to RE2 (linear-time regular expressions), because Swift cannot
// import RE2's C++ classes directly. Postern's only RE2 wrapper: Routing
// compiles and matches, Translate validates.
#ifndef CRE2_H
#define CRE2_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// An opaque compiled pattern. Immutable after compilation; matching from
/// several threads at once is safe (RE2 guarantees it).
typedef struct cre2_regex cre2_regex;

/// Compiles `pattern` (UTF-8, `length` bytes, RE2 syntax). Returns NULL when it
/// does not compile, with a NUL-terminated reason in `error` (truncated to
/// `error_capacity`). Program size is capped so a hostile pattern cannot eat memory.
cre2_regex *cre2_compile(const char *pattern, size_t length, char *error, size_t error_capacity);

/// Frees a pattern from `cre2_compile`. NULL is ignored.
void cre2_free(cre2_regex *regex);

/// The number of capturing groups in the pattern.
int cre2_group_count(const cre2_regex *regex);

/// Matches the pattern anchored at the start of `text` (not at its end).
/// Returns 1 on a match, 0 otherwise. On a match, for group i in
/// 0..<group_capacity (0 is the whole match), `offsets[2i]` and
/// `offsets[2i+1]` receive its start and end in `text`, or -1 when the group
/// did not take part. Allocation-free after RE2's per-pattern caches warm up.
/// Runs in time linear in `length`.
int cre2_match_prefix(const cre2_regex *regex, const unsigned char *text, size_t length,
                      int *offsets, int group_capacity);

#ifdef __cplusplus
}
#endif

#endif
