/* Softmax splatting on the CPU: the accumulate and normalise passes of vid4d/py/splat.py's "native" kernel.
 *
 * Compiled at first use by vid4d/py/native.py (plain C99, no intrinsics, no OpenMP: the Python side runs
 * these functions on its own threads, and ctypes releases the GIL around each call).
 *
 * The accumulator is channels-last, pixels of K = nc + 1 floats (nc feature channels, then the weight):
 * the frame padded by PAD = 2 pixels on every side, then a spare bin. A source whose target is off the
 * frame is clamped into the padding and a skipped one goes to the spare bin, so no corner needs a test.
 * Channels-last puts the four corners' K values in two short runs of memory (K-wide vector adds), where
 * channels-first planes touch 4 * K scattered cache lines per source.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define PAD 2
/* Pixels of the accumulator: the padded frame, then a spare bin (with room for its four corners). */
size_t vid4d_splat_acc_pixels(int h, int w) { return (size_t)(h + 2 * PAD) * (size_t)(w + 2 * PAD) + (size_t)w + 2 * PAD + 2; }

#define MAX_K 17 /* values per accumulator pixel: NATIVE_GROUP (16, vid4d/py/splat.py) channels + the weight */

/* Each source of one row: the accumulator pixel of its top-left corner (`spare` for a skipped source,
 * whose target or weight g is not finite) and its four corners' weights (0 when skipped), into row
 * buffers. Branch-free, so it vectorises; the scatter that follows then has no tests at all. */
static void corners_row(const float *restrict flow_x, const float *restrict flow_y, const float *restrict g,
                        float y, int w, int h, int spare, int32_t *restrict at, float *restrict w0,
                        float *restrict w1, float *restrict w2, float *restrict w3) {
    const int wp = w + 2 * PAD;
    const float xmax = (float)w, ymax = (float)h;
    for (int x = 0; x < w; ++x) {
        float tx = (float)x + flow_x[x];
        float ty = y + flow_y[x];
        const float gg = g[x];
        const int ok = (fabsf(tx) <= FLT_MAX) & (fabsf(ty) <= FLT_MAX) & (fabsf(gg) <= FLT_MAX); /* false for NaN */
        /* Off the frame, both columns (rows) of the corners land in the padding, which is cropped. */
        tx = tx < -PAD ? -PAD : (tx > xmax ? xmax : tx);
        ty = ty < -PAD ? -PAD : (ty > ymax ? ymax : ty);
        tx = ok ? tx : 0.0f; /* (keeps the conversions below defined) */
        ty = ok ? ty : 0.0f;
        int x0 = (int)tx, y0 = (int)ty; /* floor, exactly: the truncation, one less where it rounded up */
        x0 -= tx < (float)x0;
        y0 -= ty < (float)y0;
        const float fx = tx - (float)x0, fy = ty - (float)y0;
        const float a = (1.0f - fx) * gg, bx = fx * gg, bb = 1.0f - fy;
        at[x] = ok ? (y0 + PAD) * wp + (x0 + PAD) : spare;
        w0[x] = ok ? a * bb : 0.0f;
        w1[x] = ok ? bx * bb : 0.0f;
        w2[x] = ok ? a * fy : 0.0f;
        w3[x] = ok ? bx * fy : 0.0f;
    }
}

/* The sources of rows [row0, row1) of one frame into acc, as a function `name` with NC feature channels
 * (a constant where it can be, so that the K = NC + 1 values of a pixel are one vector operation). */
#define DEFINE_ACCUMULATE(name, NC, KCAP)                                                                   \
static void name(const float *feat, long long chan_stride, int nc_arg, const float *flow, const float *g,   \
                 int h, int w, int row0, int row1, float *acc, float *scratch) {                            \
    const int nc = (NC), k = nc + 1;                                                                        \
    const long long n = (long long)h * w, wp = w + 2 * PAD;                                                 \
    const int spare = (h + 2 * PAD) * (w + 2 * PAD);                                                        \
    float *w0 = scratch, *w1 = w0 + w, *w2 = w1 + w, *w3 = w2 + w;                                          \
    int32_t *at = (int32_t *)(w3 + w);                                                                      \
    float *ones = w3 + 2 * w;                                                                               \
    if (!g)                                                                                                 \
        for (int x = 0; x < w; ++x) ones[x] = 1.0f;                                                         \
    float v[KCAP];                                                                                          \
    (void)nc_arg;                                                                                           \
    for (int y = row0; y < row1; ++y) {                                                                     \
        const long long p0 = (long long)y * w;                                                              \
        corners_row(flow + p0, flow + n + p0, g ? g + p0 : ones, (float)y, w, h, spare, at, w0, w1, w2, w3); \
        for (int x = 0; x < w; ++x) {                                                                       \
            for (int c = 0; c < nc; ++c) v[c] = feat[c * chan_stride + p0 + x];                            \
            v[nc] = 1.0f;                                                                                   \
            float *q = acc + (long long)at[x] * k, *r = q + wp * k;                                         \
            for (int c = 0; c < k; ++c) {                                                                   \
                q[c] += w0[x] * v[c];                                                                       \
                q[k + c] += w1[x] * v[c];                                                                   \
                r[c] += w2[x] * v[c];                                                                       \
                r[k + c] += w3[x] * v[c];                                                                   \
            }                                                                                               \
        }                                                                                                   \
    }                                                                                                       \
}
DEFINE_ACCUMULATE(accumulate_1, 1, 2)
DEFINE_ACCUMULATE(accumulate_3, 3, 4)
DEFINE_ACCUMULATE(accumulate_4, 4, 5)
DEFINE_ACCUMULATE(accumulate_8, 8, 9)
DEFINE_ACCUMULATE(accumulate_16, 16, 17)
DEFINE_ACCUMULATE(accumulate_any, nc_arg, MAX_K)

/* Accumulate the sources of rows [row0, row1) of a frame: feat is its channel c0 (channel c at
 * feat + c * chan_stride, pixel p at + p, [H, W] row-major), flow [2, H, W] (x, y displacement), g [H, W]
 * the per-source weight (e^(Z - m), Z, or NULL for 1). A source is skipped when its target or g is not
 * finite. acc holds (H + 4) * (W + 4) + W + 6 pixels of nc + 1 floats (the last ones a spare bin for
 * skipped sources); with zero != 0 it is cleared first. scratch holds 6 * W floats. Returns 0, or -1 (and
 * does nothing) when nc is not in 1 .. MAX_K - 1 or the accumulator's pixels do not fit an int32. */
int vid4d_splat_accumulate(const float *feat, long long chan_stride, int nc, const float *flow,
                            const float *g, int h, int w, int row0, int row1, float *acc, int zero,
                            float *scratch) {
    if (nc < 1 || nc > MAX_K - 1 || h < 1 || w < 1 || vid4d_splat_acc_pixels(h, w) >= (size_t)INT32_MAX) return -1;
    if (zero) memset(acc, 0, sizeof(float) * vid4d_splat_acc_pixels(h, w) * (size_t)(nc + 1));
    switch (nc) { /* the common channel counts with the inner loops unrolled */
    case 1: accumulate_1(feat, chan_stride, nc, flow, g, h, w, row0, row1, acc, scratch); break;
    case 3: accumulate_3(feat, chan_stride, nc, flow, g, h, w, row0, row1, acc, scratch); break;
    case 4: accumulate_4(feat, chan_stride, nc, flow, g, h, w, row0, row1, acc, scratch); break;
    case 8: accumulate_8(feat, chan_stride, nc, flow, g, h, w, row0, row1, acc, scratch); break;
    case 16: accumulate_16(feat, chan_stride, nc, flow, g, h, w, row0, row1, acc, scratch); break;
    default: accumulate_any(feat, chan_stride, nc, flow, g, h, w, row0, row1, acc, scratch); break;
    }
    return 0;
}

/* One output row from the summed accumulator row src [W * K] (channels-last): see vid4d_splat_normalise. */
static inline __attribute__((always_inline)) void normalise_row(
    const float *src, const int nc, int w, int sum_mode, float *out, long long chan_stride, uint8_t *holes,
    float *den) {
    const int k = nc + 1;
    for (int x = 0; x < w; ++x) den[x] = src[x * k + nc];
    if (holes)
        for (int x = 0; x < w; ++x) holes[x] = den[x] <= 0.0f;
    for (int c = 0; c < nc; ++c) {
        float *o = out + c * chan_stride;
        if (sum_mode) {
            for (int x = 0; x < w; ++x) o[x] = src[x * k + c];
            continue;
        }
        /* A safe divisor everywhere and a select after, so the loop has no branch (and vectorises). */
        for (int x = 0; x < w; ++x) {
            const float d = den[x];
            const float r = src[x * k + c] / (d > 0.0f ? d : 1.0f);
            o[x] = d > 0.0f ? r : 0.0f;
        }
    }
}

/* Output rows [row0, row1) of a frame from the sum of nacc accumulators: out (its channel c0; channel c
 * at out + c * chan_stride, [H, W] row-major) is Σ I·w / Σ w where Σ w > 0 and 0 elsewhere, or Σ I·w itself
 * with sum_mode; holes (uint8 [H, W], or NULL) is 1 where Σ w <= 0. scratch holds (nc + 2) * W floats. */
void vid4d_splat_normalise(const float *const *accs, int nacc, int nc, int w, int row0, int row1,
                           int sum_mode, float *out, long long chan_stride, uint8_t *holes, float *scratch) {
    const int k = nc + 1;
    const long long wp = w + 2 * PAD;
    float *den = scratch, *sum = scratch + w;
    for (int y = row0; y < row1; ++y) {
        const long long at = ((y + PAD) * wp + PAD) * k;
        const float *src = accs[0] + at;
        if (nacc > 1) { /* the accumulators of several source bands: their sum, one row at a time */
            for (long long i = 0; i < (long long)w * k; ++i) sum[i] = src[i] + accs[1][at + i];
            for (int j = 2; j < nacc; ++j)
                for (long long i = 0; i < (long long)w * k; ++i) sum[i] += accs[j][at + i];
            src = sum;
        }
        float *o = out + (long long)y * w;
        uint8_t *hl = holes ? holes + (long long)y * w : NULL;
        switch (nc) {
        case 1: normalise_row(src, 1, w, sum_mode, o, chan_stride, hl, den); break;
        case 3: normalise_row(src, 3, w, sum_mode, o, chan_stride, hl, den); break;
        case 4: normalise_row(src, 4, w, sum_mode, o, chan_stride, hl, den); break;
        case 8: normalise_row(src, 8, w, sum_mode, o, chan_stride, hl, den); break;
        case 16: normalise_row(src, 16, w, sum_mode, o, chan_stride, hl, den); break;
        default: normalise_row(src, nc, w, sum_mode, o, chan_stride, hl, den); break;
        }
    }
}
