// RE2 behind a C interface (see include/CRE2.h for why and the contract).
#include "CRE2.h"

#include <re2/re2.h>

#include <cstring>
#include <new>
#include <string>

namespace {
// RE2's default is 8 MiB per pattern; Ingress paths are short, so a pattern
// that needs more than 1 MiB of program is hostile or broken.
constexpr int64_t kMaxProgramMemory = 1 << 20;
// Capture groups read back: $0..$9 is all rewrite-target can name.
constexpr int kMaxGroups = 10;
}  // namespace

struct cre2_regex {
    re2::RE2 re;
    cre2_regex(const re2::StringPiece &pattern, const re2::RE2::Options &options) : re(pattern, options) {}
};

extern "C" cre2_regex *cre2_compile(const char *pattern, size_t length, char *error, size_t error_capacity) {
    re2::RE2::Options options;
    options.set_log_errors(false);
    options.set_max_mem(kMaxProgramMemory);
    auto *regex = new (std::nothrow) cre2_regex(re2::StringPiece(pattern, length), options);
    if (regex == nullptr) {
        if (error_capacity > 0) std::strncpy(error, "out of memory", error_capacity - 1), error[error_capacity - 1] = 0;
        return nullptr;
    }
    if (!regex->re.ok()) {
        if (error_capacity > 0) {
            const std::string &message = regex->re.error();
            size_t n = message.size() < error_capacity - 1 ? message.size() : error_capacity - 1;
            std::memcpy(error, message.data(), n);
            error[n] = 0;
        }
        delete regex;
        return nullptr;
    }
    return regex;
}

extern "C" void cre2_free(cre2_regex *regex) { delete regex; }

extern "C" int cre2_group_count(const cre2_regex *regex) { return regex->re.NumberOfCapturingGroups(); }

extern "C" int cre2_match_prefix(const cre2_regex *regex, const unsigned char *text, size_t length, int *offsets,
                                 int group_capacity) {
    static const char empty = 0;
    const char *base = text != nullptr ? reinterpret_cast<const char *>(text) : &empty;
    re2::StringPiece input(base, length);
    int groups = group_capacity;
    if (groups > kMaxGroups) groups = kMaxGroups;
    if (groups > regex->re.NumberOfCapturingGroups() + 1) groups = regex->re.NumberOfCapturingGroups() + 1;
    if (groups < 0) groups = 0;
    re2::StringPiece submatch[kMaxGroups];
    if (!regex->re.Match(input, 0, length, re2::RE2::ANCHOR_START, submatch, groups)) return 0;
    for (int i = 0; i < group_capacity; i++) {
        if (i < groups && submatch[i].data() != nullptr) {
            offsets[2 * i] = static_cast<int>(submatch[i].data() - base);
            offsets[2 * i + 1] = static_cast<int>(submatch[i].data() - base + submatch[i].size());
        } else {
            offsets[2 * i] = -1;
            offsets[2 * i + 1] = -1;
        }
    }
    return 1;
}
