/* izyrt C ABI: the streamproto1 codec for programs that embed izyrt.
 *
 * Link with -lizyrt_ffi (libizyrt_ffi.so or libizyrt_ffi.a from `cargo build -p izyrt-ffi --release`).
 * No function panics across this boundary; none allocates except izyrt_decoder_new.
 */
#ifndef IZYRT_H
#define IZYRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Result codes (negative) of the functions below. */
#define IZYRT_ERR_INVALID   (-1) /* the frame would not be valid streamproto1 */
#define IZYRT_ERR_TOO_SMALL (-2) /* the output buffer is too short */
#define IZYRT_ERR_NULL      (-3) /* a required pointer was NULL */
#define IZYRT_ERR_PROTOCOL  (-4) /* the stream is malformed: see izyrt_decoder_error */
#define IZYRT_ERR_PANIC     (-5) /* an internal error was caught */

/* Wire formats of AUDIO samples. */
#define IZYRT_FORMAT_F32 1
#define IZYRT_FORMAT_S16 2

/* The AUDIO sub-header. */
typedef struct izyrt_audio_header {
    uint32_t sample_rate; /* 8000..=384000 */
    uint16_t channels;    /* 1..=64 */
    uint16_t format;      /* IZYRT_FORMAT_F32 or IZYRT_FORMAT_S16 */
    uint32_t frames;      /* 1..=4096 */
    uint64_t position;
    uint64_t origin_ns;
    uint64_t echo_ns;
} izyrt_audio_header;

/* One decoded frame; `payload` points into the decoder and is valid until the next
 * call on that decoder. For a frame of unknown kind, payload_len is 0. */
typedef struct izyrt_frame {
    uint64_t offset; /* byte offset of the frame in the stream */
    uint8_t kind;
    uint16_t track;
    uint16_t flags;
    uint32_t seq;
    uint32_t len;
    const uint8_t *payload;
    size_t payload_len;
} izyrt_frame;

typedef struct izyrt_decoder izyrt_decoder;

/* The library version, e.g. "0.1.0" (static string). */
const char *izyrt_version(void);

/* Encodes one AUDIO frame from `n_samples` interleaved floats into `out`.
 * Returns the frame length, or IZYRT_ERR_*. */
int64_t izyrt_encode_audio(uint8_t *out, size_t out_len, uint16_t track, uint32_t seq,
                           const izyrt_audio_header *header, const float *samples, size_t n_samples);

/* Parses a validated AUDIO payload: fills `header` and writes up to `out_len` samples as
 * floats. Returns the number of samples written, or IZYRT_ERR_*. */
int64_t izyrt_audio_read(const uint8_t *payload, size_t payload_len, izyrt_audio_header *header,
                         float *out, size_t out_len);

/* A decoder for one byte stream (about 1.1 MiB). NULL on failure. */
izyrt_decoder *izyrt_decoder_new(void);
void izyrt_decoder_free(izyrt_decoder *decoder);

/* Gives bytes to the decoder; returns how many it took (call izyrt_decoder_next until it
 * returns 0 before feeding again). */
size_t izyrt_decoder_feed(izyrt_decoder *decoder, const uint8_t *bytes, size_t len);

/* 1: a frame was written to `frame`; 0: more bytes are needed; IZYRT_ERR_PROTOCOL: the
 * stream is malformed (the decoder stays failed). */
int izyrt_decoder_next(izyrt_decoder *decoder, izyrt_frame *frame);

/* The spec's error code of a failed decoder ("bad_magic", ...), or NULL (static string). */
const char *izyrt_decoder_error(const izyrt_decoder *decoder);

#ifdef __cplusplus
}
#endif

#endif /* IZYRT_H */
