/*
 * latte.h: the C API of the Latte runtime (crates/latte-ffi).
 *
 * Link the host library (built with the `std` feature, the default) and
 * define LATTE_STD before including this header to get the functions that
 * load from a path and allocate (latte_model_load, latte_session_new, ...).
 * The no_std library (--no-default-features, for firmware) has only the
 * functions that work in caller memory. Every function returns a LatteStatus;
 * latte_last_error() says what went wrong.
 */

#ifndef LATTE_H
#define LATTE_H

/* Generated from crates/latte-ffi/src/lib.rs by cbindgen (tests/header.rs); do not edit. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// What a call did. `LATTE_STATUS_OK` is 0; every other value is a failure,
// described by [`latte_last_error`].
typedef enum LatteStatus {
  // Success.
  LATTE_STATUS_OK = 0,
  // A required pointer argument is null.
  LATTE_STATUS_NULL_POINTER = 1,
  // A buffer is too small (state, scratch, snapshot, object memory).
  LATTE_STATUS_BUFFER_TOO_SMALL = 2,
  // A buffer is not aligned as required (model bytes: 4; object memory:
  // the `*_struct_align` value).
  LATTE_STATUS_MISALIGNED = 3,
  // The model file is damaged, not a Latte model, or not supported.
  LATTE_STATUS_INVALID_MODEL = 4,
  // An argument is out of range (sampler settings, chunk size, ...).
  LATTE_STATUS_INVALID_ARGUMENT = 5,
  // A token is outside the vocabulary, or the prompt is empty.
  LATTE_STATUS_INVALID_TOKEN = 6,
  // A snapshot is damaged, of another format version or of another model.
  LATTE_STATUS_INVALID_SNAPSHOT = 7,
  // The abort callback asked to stop.
  LATTE_STATUS_CANCELLED = 8,
  // A file could not be read (`std` only).
  LATTE_STATUS_IO = 9,
  // A bug in the library (a caught panic); please report it.
  LATTE_STATUS_INTERNAL = 10,
} LatteStatus;

// How an attention window's ring stores its keys and values (Macchiato
// and attention models): the values [`latte_model_set_ring_storage`]
// takes.
typedef enum LatteRingStorage {
  // 32-bit floats, the default: exact.
  LATTE_RING_STORAGE_F32 = 0,
  // 16-bit floats: half the memory.
  LATTE_RING_STORAGE_F16 = 1,
  // 8-bit integers with a `float` scale per head of each key and value:
  // about a third of the memory.
  LATTE_RING_STORAGE_Q8 = 2,
} LatteRingStorage;

// A validated model whose weights are read in place. Opaque.
typedef struct LatteModel LatteModel;

// A sampler: settings, random state and the penalty window. Opaque.
typedef struct LatteSampler LatteSampler;

// A session: position, recurrent state and logits, on caller buffers (or,
// from [`latte_session_new`], on the library's). Opaque.
typedef struct LatteSession LatteSession;

// The sizes a session on `model` needs, in `float` elements: `state` and
// `scratch` for [`latte_session_init`]; `vocab` logits.
typedef struct LatteModelSizes {
  // Elements of recurrent state (constant: independent of the position).
  size_t state_len;
  // Elements of scratch.
  size_t scratch_len;
  // Vocabulary size (logits per step).
  size_t vocab_size;
  // Bytes of a snapshot ([`latte_session_save`]).
  size_t snapshot_len;
  // The model's 64-bit fingerprint (snapshots carry it).
  uint64_t fingerprint;
} LatteModelSizes;

// Sampler settings (`latte run`'s flags). [`latte_sampler_config_default`]
// gives greedy decoding.
typedef struct LatteSamplerConfig {
  // 0 = greedy; otherwise the logits are divided by it. Finite, >= 0.
  float temperature;
  // Keep the `top_k` most probable tokens; 0 = off.
  size_t top_k;
  // Nucleus mass in (0, 1]; 1 = off.
  float top_p;
  // Repetition penalty, > 0; 1 = off.
  float repeat_penalty;
  // Tokens the penalty looks back at (at most 256); 0 = off.
  size_t repeat_last_n;
  // Random seed.
  uint64_t seed;
} LatteSamplerConfig;

// An abort callback: return `true` to stop. Called with the `user`
// pointer given alongside it, between tokens or chunks.
typedef bool (*LatteAbortFn)(void *user);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

// The message of the last failure on this thread (with `std`), a
// NUL-terminated UTF-8 string owned by the library, valid until the next
// failing call on this thread. Empty before any failure.
const char *latte_last_error(void);

// A fixed description of `status` (a [`LatteStatus`] value; any other
// number gets "unknown status") as a NUL-terminated static string; for the
// details of a failure use [`latte_last_error`].
const char *latte_status_message(int32_t status);

// Bytes of memory [`latte_model_init`] needs.
size_t latte_model_struct_size(void);

// Alignment [`latte_model_init`]'s memory needs.
size_t latte_model_struct_align(void);

// Validates the GGUF model in `bytes` (`len` bytes, 4-byte aligned, read
// in place: they must outlive the model) and builds the model in `mem`
// (`mem_len` bytes, [`latte_model_struct_size`] and
// [`latte_model_struct_align`]). On success `*out` points into `mem`.
// Nothing to free.
enum LatteStatus latte_model_init(void *mem,
                                  size_t mem_len,
                                  const uint8_t *bytes,
                                  size_t len,
                                  struct LatteModel **out);

#if defined(LATTE_STD)
// Reads and validates the model file at `path` (a NUL-terminated path) and
// allocates the model; free it with [`latte_model_free`]. `std` only.
enum LatteStatus latte_model_load(const char *path, struct LatteModel **out);
#endif

#if defined(LATTE_STD)
// Copies `len` bytes of a GGUF model (any alignment; the copy may be freed
// by the caller afterwards) and allocates the model; free it with
// [`latte_model_free`]. `std` only.
enum LatteStatus latte_model_from_bytes(const uint8_t *bytes, size_t len, struct LatteModel **out);
#endif

#if defined(LATTE_STD)
// Frees a model from [`latte_model_load`] or [`latte_model_from_bytes`]
// (NULL is ignored). Its sessions must be gone. Not for models built with
// [`latte_model_init`]. `std` only.
void latte_model_free(struct LatteModel *model);
#endif

// Sets how `model`'s attention windows store keys and values (`storage`, a
// [`LatteRingStorage`] value), which changes its state size: call it after
// loading, before the model's first session (the sizes from
// [`latte_model_sizes`] then include it). For Macchiato and attention
// models only; snapshots restore only into a model with the same storage.
enum LatteStatus latte_model_set_ring_storage(struct LatteModel *model, int32_t storage);

// Writes `model`'s sizes to `*out`.
enum LatteStatus latte_model_sizes(const struct LatteModel *model, struct LatteModelSizes *out);

// `float` elements of the second scratch buffer [`latte_session_prefill`]
// needs for chunks of `chunk` tokens.
enum LatteStatus latte_model_prefill_scratch_len(const struct LatteModel *model,
                                                 size_t chunk,
                                                 size_t *out);

// Greedy decoding, no penalty, seed 0.
struct LatteSamplerConfig latte_sampler_config_default(void);

// Bytes of memory [`latte_sampler_init`] needs.
size_t latte_sampler_struct_size(void);

// Alignment [`latte_sampler_init`]'s memory needs.
size_t latte_sampler_struct_align(void);

// Validates `config` and builds a sampler in `mem`. Nothing to free.
enum LatteStatus latte_sampler_init(void *mem,
                                    size_t mem_len,
                                    const struct LatteSamplerConfig *config,
                                    struct LatteSampler **out);

#if defined(LATTE_STD)
// Allocates a sampler; free it with [`latte_sampler_free`]. `std` only.
enum LatteStatus latte_sampler_new(const struct LatteSamplerConfig *config,
                                   struct LatteSampler **out);
#endif

#if defined(LATTE_STD)
// Frees a sampler from [`latte_sampler_new`] (NULL is ignored). `std` only.
void latte_sampler_free(struct LatteSampler *sampler);
#endif

// Records a prompt token in the sampler's penalty window (do this for each
// prompt token, as `latte run` does, before sampling).
enum LatteStatus latte_sampler_accept(struct LatteSampler *sampler, uint32_t token);

// Bytes of memory [`latte_session_init`] needs.
size_t latte_session_struct_size(void);

// Alignment [`latte_session_init`]'s memory needs.
size_t latte_session_struct_align(void);

// Starts a session on `model` at position 0, with `state` and `scratch`
// (`float`s; at least [`LatteModelSizes`]' `state_len` and `scratch_len`),
// built in `mem`. The model and both buffers must outlive the session.
// Nothing to free.
enum LatteStatus latte_session_init(void *mem,
                                    size_t mem_len,
                                    const struct LatteModel *model,
                                    float *state,
                                    size_t state_len,
                                    float *scratch,
                                    size_t scratch_len,
                                    struct LatteSession **out);

#if defined(LATTE_STD)
// Allocates a session on `model` with its own state and scratch; free it
// with [`latte_session_free`] before the model. `std` only.
enum LatteStatus latte_session_new(const struct LatteModel *model, struct LatteSession **out);
#endif

#if defined(LATTE_STD)
// Frees a session from [`latte_session_new`] (NULL is ignored). `std` only.
void latte_session_free(struct LatteSession *session);
#endif

// Back to position 0 and the initial state.
enum LatteStatus latte_session_reset(struct LatteSession *session);

// Writes the number of tokens fed so far to `*out`.
enum LatteStatus latte_session_position(const struct LatteSession *session, uint64_t *out);

// Feeds one token; the logits for the next one are then available.
enum LatteStatus latte_session_step(struct LatteSession *session, uint32_t token);

// Feeds `n` tokens one at a time, calling `abort(user)` (if not NULL)
// before each; on `true` it stops with [`LatteStatus::Cancelled`], the
// tokens before fed. All tokens are checked first (nothing is fed if one
// is out of range).
enum LatteStatus latte_session_feed(struct LatteSession *session,
                                    const uint32_t *tokens,
                                    size_t n,
                                    LatteAbortFn abort,
                                    void *user);

// Feeds `n` tokens in chunks of up to `chunk` (matrix-matrix products; the
// same bits as [`latte_session_feed`]), with `prefill_scratch`
// ([`latte_model_prefill_scratch_len`]`(chunk)` floats), calling
// `abort(user)` before each chunk.
enum LatteStatus latte_session_prefill(struct LatteSession *session,
                                       const uint32_t *tokens,
                                       size_t n,
                                       size_t chunk,
                                       float *prefill_scratch,
                                       size_t prefill_scratch_len,
                                       LatteAbortFn abort,
                                       void *user);

// Points `*logits` at the logits after the last token fed (`*len` =
// vocabulary size; zeros at position 0). Valid until the session changes.
enum LatteStatus latte_session_logits(const struct LatteSession *session,
                                      const float **logits,
                                      size_t *len);

// Draws the next token from the current logits with `sampler` (which
// records it); does not feed it: call [`latte_session_step`] with it.
enum LatteStatus latte_session_sample(struct LatteSession *session,
                                      struct LatteSampler *sampler,
                                      uint32_t *token);

// Saves the session and `sampler` to `buf` (`len` bytes, at least
// [`LatteModelSizes`]' `snapshot_len`); `*written` gets the bytes written.
enum LatteStatus latte_session_save(const struct LatteSession *session,
                                    const struct LatteSampler *sampler,
                                    uint8_t *buf,
                                    size_t len,
                                    size_t *written);

// Restores a snapshot from [`latte_session_save`] into the session and
// `sampler`; refused (nothing changed) if damaged or from another model.
enum LatteStatus latte_session_restore(struct LatteSession *session,
                                       struct LatteSampler *sampler,
                                       const uint8_t *buf,
                                       size_t len);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* LATTE_H */
