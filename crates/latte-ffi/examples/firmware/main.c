/* C firmware for QEMU's mps2-an386 (Cortex-M4F): links the Rust static
 * library (no_std) and a model in flash, and prints the board demo's two
 * lines, which must equal boards/expected/<model>.txt:
 *
 *   greedy: b"..."   64 greedy bytes after "And God said, Let there be light"
 *   sampled: b"..."  64 bytes after "It was a dark and stormy night",
 *                    temperature 0.8, top-k 40, top-p 0.95, seed 42
 *
 * Everything lives in statics: no heap, no C library. This is the path a
 * Zephyr or ESP-IDF application takes. */
#include <stddef.h>
#include <stdint.h>

#include "latte.h"

void sh_write(const char *s, size_t n);

extern const uint8_t latte_model_bytes[], latte_model_end[];

/* Generous static areas; the sizes are checked against the model at run time. */
static uint64_t model_mem[4096];
static uint64_t session_mem[64];
static uint64_t sampler_mem[256];
static float state[16384];
static float scratch[4096];

static size_t cstrlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

static void put(const char *s) { sh_write(s, cstrlen(s)); }

static int check(LatteStatus s, const char *what) {
    if (s == LATTE_STATUS_OK) return 1;
    put("error: ");
    put(what);
    put(": ");
    put(latte_last_error());
    put("\n");
    return 0;
}

/* The line as defmt prints a byte string: b"..." with Rust's escapes. */
static void put_bytes(const char *label, const uint8_t *b, size_t n) {
    static const char hex[] = "0123456789abcdef";
    char out[8 * 64 + 64];
    size_t k = 0;
    for (const char *p = label; *p; p++) out[k++] = *p;
    out[k++] = 'b';
    out[k++] = '"';
    for (size_t i = 0; i < n && k + 8 < sizeof out; i++) {
        uint8_t c = b[i];
        if (c == '\\' || c == '"') { out[k++] = '\\'; out[k++] = (char)c; }
        else if (c == '\n') { out[k++] = '\\'; out[k++] = 'n'; }
        else if (c == '\t') { out[k++] = '\\'; out[k++] = 't'; }
        else if (c == '\r') { out[k++] = '\\'; out[k++] = 'r'; }
        else if (c >= 0x20 && c < 0x7f) out[k++] = (char)c;
        else { out[k++] = '\\'; out[k++] = 'x'; out[k++] = hex[c >> 4]; out[k++] = hex[c & 15]; }
    }
    out[k++] = '"';
    out[k++] = '\n';
    sh_write(out, k);
}

static int generate(LatteSession *s, const LatteSamplerConfig *cfg, const char *prompt, uint8_t *out, size_t n) {
    LatteSampler *sampler;
    if (!check(latte_sampler_init(sampler_mem, sizeof sampler_mem, cfg, &sampler), "sampler")) return 0;
    if (!check(latte_session_reset(s), "reset")) return 0;
    for (const char *p = prompt; *p; p++) {
        uint32_t t = (uint8_t)*p;
        if (!check(latte_sampler_accept(sampler, t), "accept")) return 0;
        if (!check(latte_session_step(s, t), "step")) return 0;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t t;
        if (!check(latte_session_sample(s, sampler, &t), "sample")) return 0;
        out[i] = (uint8_t)t;
        if (!check(latte_session_step(s, t), "step")) return 0;
    }
    return 1;
}

int main(void) {
    LatteModel *model;
    LatteSession *session;
    LatteModelSizes sizes;
    uint8_t text[64];
    size_t len = (size_t)(latte_model_end - latte_model_bytes);
    if (!check(latte_model_init(model_mem, sizeof model_mem, latte_model_bytes, len, &model), "model"))
        return 1;
    if (!check(latte_model_sizes(model, &sizes), "sizes")) return 1;
    if (!check(latte_session_init(session_mem, sizeof session_mem, model, state,
                                  sizeof state / sizeof state[0], scratch,
                                  sizeof scratch / sizeof scratch[0], &session),
               "session"))
        return 1;
    LatteSamplerConfig greedy = latte_sampler_config_default();
    if (!generate(session, &greedy, "And God said, Let there be light", text, 64)) return 1;
    put_bytes("greedy: ", text, 64);
    LatteSamplerConfig sampled = latte_sampler_config_default();
    sampled.temperature = 0.8f;
    sampled.top_k = 40;
    sampled.top_p = 0.95f;
    sampled.repeat_penalty = 1.0f;
    sampled.repeat_last_n = 64;
    sampled.seed = 42;
    if (!generate(session, &sampled, "It was a dark and stormy night", text, 64)) return 1;
    put_bytes("sampled: ", text, 64);
    return 0;
}
