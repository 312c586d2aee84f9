/* Area resampling of an 8-bit, 3-channel image to a smaller size, with OpenCV's arithmetic.
 *
 * cv2.resize(src, (dw, dh), interpolation=cv2.INTER_AREA) at a non-integer ratio averages each output
 * pixel over the source cells it covers: a horizontal pass per source row (weights from a tap table, summed
 * in float32 in table order) and a vertical pass (the rows' sums weighted and summed in float32 in table
 * order), rounded half to even (area_resize). At an integer ratio it sums each block in integers and scales
 * the sum (area_blocks). This module does the same operations on the same values in the same order, so
 * its output is bit-identical, but keeps each output pixel's three channels in one 4-lane register, pads
 * every output's taps to one count (no data-dependent branch), and sums a row that is white throughout
 * (most rows of a drawn scene) once; OpenCV's generic loop is scalar and goes through memory on every tap.
 * No fused multiply-adds: the build passes -ffp-contract=off, and the SSE2 path uses separate multiply and
 * add instructions.
 *
 * iapo_gym.tools.resample checks this kernel against cv2 before it uses it, and falls back to cv2 where
 * they differ (an OpenCV built with fused multiply-adds, for one).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(_MSC_VER) && !defined(restrict)
#define restrict __restrict
#endif
#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define AREA_SSE2 1
#endif

typedef struct {
    int *start; /* taps of output index d: start[d] .. start[d + 1] - 1 */
    int *src;   /* source index of each tap */
    float *alpha;
    int width;    /* the most taps of any output index */
    int *psrc;    /* the taps again, padded to `width` per output index with weight-0 taps */
    float *palpha;
} Taps;

/* OpenCV's tap table for one axis: source cells covered by each of `dsize` output cells, `scale` source
 * cells per output cell, partial cells (overlap over 1e-3) weighted by their overlap; weights computed in
 * double and stored as float, divided by the cell's width. */
static int area_taps(int ssize, int dsize, double scale, Taps *t) {
    int cap = 2 * ssize + 2 * dsize + 2, k = 0;
    t->start = (int *)malloc(sizeof(int) * (size_t)(dsize + 1));
    t->src = (int *)malloc(sizeof(int) * (size_t)cap);
    t->alpha = (float *)malloc(sizeof(float) * (size_t)cap);
    if (!t->start || !t->src || !t->alpha)
        return -1;
    for (int d = 0; d < dsize; d++) {
        double f1 = d * scale, f2 = f1 + scale;
        double cell = scale < ssize - f1 ? scale : ssize - f1;
        int s1 = (int)ceil(f1), s2 = (int)floor(f2);
        if (s2 > ssize - 1)
            s2 = ssize - 1;
        if (s1 > s2)
            s1 = s2;
        t->start[d] = k;
        if (s1 - f1 > 1e-3 && k < cap) {
            t->src[k] = s1 - 1;
            t->alpha[k++] = (float)((s1 - f1) / cell);
        }
        for (int s = s1; s < s2 && k < cap; s++) {
            t->src[k] = s;
            t->alpha[k++] = (float)(1.0 / cell);
        }
        if (f2 - s2 > 1e-3 && k < cap) {
            double part = f2 - s2 < 1.0 ? f2 - s2 : 1.0;
            if (cell < part)
                part = cell;
            t->src[k] = s2;
            t->alpha[k++] = (float)(part / cell);
        }
    }
    t->start[dsize] = k;
    /* padded copy: acc + pixel * 0 == acc exactly (all values are finite and >= 0), so a fixed number of
     * taps per output gives the same sums without a data-dependent loop (branch mispredictions) */
    int width = 1;
    for (int d = 0; d < dsize; d++)
        if (t->start[d + 1] - t->start[d] > width)
            width = t->start[d + 1] - t->start[d];
    t->width = width;
    t->psrc = (int *)malloc(sizeof(int) * (size_t)dsize * width);
    t->palpha = (float *)malloc(sizeof(float) * (size_t)dsize * width);
    if (!t->psrc || !t->palpha)
        return -1;
    for (int d = 0; d < dsize; d++) {
        int n = t->start[d + 1] - t->start[d], last = n ? t->src[t->start[d] + n - 1] : 0;
        for (int j = 0; j < width; j++) {
            t->psrc[d * width + j] = j < n ? t->src[t->start[d] + j] : last;
            t->palpha[d * width + j] = j < n ? t->alpha[t->start[d] + j] : 0.0f;
        }
    }
    return 0;
}

static void free_taps(Taps *t) {
    free(t->start);
    free(t->src);
    free(t->alpha);
    free(t->psrc);
    free(t->palpha);
}

/* One source row (w pixels, 3 channels) -> dw output cells x 4 lanes (the 4th lane is unused). ``pix``
 * holds 3 * w + 1 floats: a tap loads 4 of them from its pixel on, the 4th lane being the next pixel's. */
static void horizontal(const unsigned char *restrict row, int w, const Taps *xt, int dw, float *restrict pix,
                       float *restrict buf) {
    int i = 0;
#ifdef AREA_SSE2
    const __m128i zero = _mm_setzero_si128();
    for (; i + 16 <= 3 * w; i += 16) {
        __m128i b = _mm_loadu_si128((const __m128i *)(row + i));
        __m128i lo = _mm_unpacklo_epi8(b, zero), hi = _mm_unpackhi_epi8(b, zero);
        _mm_storeu_ps(pix + i, _mm_cvtepi32_ps(_mm_unpacklo_epi16(lo, zero)));
        _mm_storeu_ps(pix + i + 4, _mm_cvtepi32_ps(_mm_unpackhi_epi16(lo, zero)));
        _mm_storeu_ps(pix + i + 8, _mm_cvtepi32_ps(_mm_unpacklo_epi16(hi, zero)));
        _mm_storeu_ps(pix + i + 12, _mm_cvtepi32_ps(_mm_unpackhi_epi16(hi, zero)));
    }
#endif
    for (; i < 3 * w; i++)
        pix[i] = (float)row[i];
    pix[3 * w] = 0.0f;
    const int width = xt->width, *src = xt->psrc;
    const float *alpha = xt->palpha;
#ifdef AREA_SSE2
#define TAP(j) _mm_mul_ps(_mm_loadu_ps(pix + 3 * src[j]), _mm_set1_ps(alpha[j]))
    /* acc starts at +0 as OpenCV's buffer does: 0 + x == x, so the first tap needs no addition */
    if (width == 2) {
        for (int d = 0; d < dw; d++, src += 2, alpha += 2)
            _mm_store_ps(buf + 4 * d, _mm_add_ps(TAP(0), TAP(1)));
    } else if (width == 3) {
        for (int d = 0; d < dw; d++, src += 3, alpha += 3)
            _mm_store_ps(buf + 4 * d, _mm_add_ps(_mm_add_ps(TAP(0), TAP(1)), TAP(2)));
    } else {
        for (int d = 0; d < dw; d++, src += width, alpha += width) {
            __m128 acc = TAP(0);
            for (int j = 1; j < width; j++)
                acc = _mm_add_ps(acc, TAP(j));
            _mm_store_ps(buf + 4 * d, acc);
        }
    }
#undef TAP
#else
    for (int d = 0; d < dw; d++, src += width, alpha += width) {
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f;
        for (int j = 0; j < width; j++) {
            const float *p = pix + 3 * src[j];
            a0 = a0 + p[0] * alpha[j];
            a1 = a1 + p[1] * alpha[j];
            a2 = a2 + p[2] * alpha[j];
        }
        buf[4 * d] = a0;
        buf[4 * d + 1] = a1;
        buf[4 * d + 2] = a2;
        buf[4 * d + 3] = 0.0f;
    }
#endif
}

/* The vertical pass for one source row: sum = beta * buf (the output row's first) or sum + beta * buf. */
static void vertical(float *restrict sum, const float *restrict buf, float beta, int n, int first) {
#ifdef AREA_SSE2
    __m128 b = _mm_set1_ps(beta);
    if (first)
        for (int i = 0; i < n; i += 4)
            _mm_store_ps(sum + i, _mm_mul_ps(b, _mm_load_ps(buf + i)));
    else
        for (int i = 0; i < n; i += 4)
            _mm_store_ps(sum + i, _mm_add_ps(_mm_load_ps(sum + i), _mm_mul_ps(b, _mm_load_ps(buf + i))));
#else
    if (first)
        for (int i = 0; i < n; i++)
            sum[i] = beta * buf[i];
    else
        for (int i = 0; i < n; i++)
            sum[i] = sum[i] + beta * buf[i];
#endif
}

static void write_row(const float *sum, int dw, unsigned char *out) {
    int d = 0;
#ifdef AREA_SSE2
    /* round half to even (the default rounding mode), as OpenCV's cvRound; the packs saturate to 0..255 */
    for (; d + 4 <= dw; d += 4) {
        __m128i p01 = _mm_packs_epi32(_mm_cvtps_epi32(_mm_load_ps(sum + 4 * d)), _mm_cvtps_epi32(_mm_load_ps(sum + 4 * d + 4)));
        __m128i p23 = _mm_packs_epi32(_mm_cvtps_epi32(_mm_load_ps(sum + 4 * d + 8)), _mm_cvtps_epi32(_mm_load_ps(sum + 4 * d + 12)));
        unsigned char v[16];
        _mm_storeu_si128((__m128i *)v, _mm_packus_epi16(p01, p23));
        for (int j = 0; j < 4; j++) {
            out[3 * (d + j)] = v[4 * j];
            out[3 * (d + j) + 1] = v[4 * j + 1];
            out[3 * (d + j) + 2] = v[4 * j + 2];
        }
    }
#endif
    for (; d < dw; d++) {
        for (int c = 0; c < 3; c++) {
            long v = lrintf(sum[4 * d + c]);
            out[3 * d + c] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

/* Whether the n bytes at p are all 255 (white). */
static int all_white(const unsigned char *p, int n) {
    int i = 0;
#ifdef AREA_SSE2
    const __m128i ff = _mm_set1_epi8((char)0xFF);
    for (; i + 16 <= n; i += 16)
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + i)), ff)) != 0xFFFF)
            return 0;
#endif
    for (; i < n; i++)
        if (p[i] != 255)
            return 0;
    return 1;
}

/* The resize itself; returns 0, or -1 when out of memory.
 *
 * Rows that are white throughout are common (the scenes are drawn on white): their horizontal sums are the
 * same for every such row, so they are computed once, from a row of 255s, and an output row whose source
 * rows are all white is white (255): its weights sum to one within float32 rounding (under 1e-4 here),
 * far from the 0.5 that would round it to 254. */
static int area_resize(const unsigned char *src, Py_ssize_t row_stride, int h, int w, unsigned char *dst, int dh, int dw) {
    Taps xt = {0}, yt = {0};
    float *mem = NULL;
    unsigned char *white = NULL;
    int status = -1;
    /* OpenCV's scales: the inverse of the inverse scale, both in double */
    if (area_taps(w, dw, 1.0 / ((double)dw / w), &xt) || area_taps(h, dh, 1.0 / ((double)dh / h), &yt))
        goto done;
    size_t floats = 12 * (size_t)dw + 3 * (size_t)w + 4;
#ifdef AREA_SSE2
    mem = (float *)_mm_malloc(sizeof(float) * floats, 16);
#else
    mem = (float *)malloc(sizeof(float) * floats);
#endif
    white = (unsigned char *)malloc((size_t)h + 3 * (size_t)w);
    if (!mem || !white)
        goto done;
    /* buf, white_buf and sum 16-byte aligned */
    float *buf = mem, *white_buf = mem + 4 * (size_t)dw, *sum = mem + 8 * (size_t)dw, *pix = mem + 12 * (size_t)dw;
    unsigned char *row_white = white, *ones = white + h;
    int any_white = 0;
    for (int y = 0; y < h; y++)
        any_white |= row_white[y] = (unsigned char)all_white(src + y * row_stride, 3 * w);
    if (any_white) {
        memset(ones, 255, 3 * (size_t)w);
        horizontal(ones, w, &xt, dw, pix, white_buf);
    }
    int last_row = -1;
    for (int dy = 0; dy < dh; dy++) {
        unsigned char *out = dst + (size_t)dy * 3 * dw;
        int k0 = yt.start[dy], k1 = yt.start[dy + 1], blank = 1;
        for (int k = k0; k < k1 && blank; k++)
            blank = row_white[yt.src[k]];
        if (blank) {
            memset(out, 255, 3 * (size_t)dw);
            continue;
        }
        for (int k = k0; k < k1; k++) {
            int sy = yt.src[k];
            const float *row_sum = white_buf;
            if (!row_white[sy]) {
                if (sy != last_row) { /* a source row shared by two output rows is summed once */
                    horizontal(src + sy * row_stride, w, &xt, dw, pix, buf);
                    last_row = sy;
                }
                row_sum = buf;
            }
            vertical(sum, row_sum, yt.alpha[k], 4 * dw, k == k0);
        }
        write_row(sum, dw, out);
    }
    status = 0;
done:
#ifdef AREA_SSE2
    _mm_free(mem);
#else
    free(mem);
#endif
    free(white);
    free_taps(&xt);
    free_taps(&yt);
    return status;
}

/* OpenCV's integer-ratio path (both scales within DBL_EPSILON of integers kx, ky >= 3): each output pixel
 * is the integer sum of its kx x ky block, times (float)(1 / (kx * ky)), rounded half to even. The sums are
 * exact integers, so any order gives them: here each 16-byte column chunk of a block row is summed over
 * the ky rows in 16-bit lanes (or, white in every row, set to ky * 255 without adding), then each block's
 * kx pixels are added; a block whose chunks are all white is white. */
static int area_blocks(const unsigned char *src, Py_ssize_t row_stride, int w, unsigned char *dst, int dh, int dw, int kx, int ky) {
    int n = 3 * kx * dw, chunks = (n + 15) / 16; /* the source bytes the blocks cover in a row */
    unsigned short *acc = (unsigned short *)malloc(sizeof(unsigned short) * 16 * (size_t)chunks);
    unsigned char *white = (unsigned char *)malloc((size_t)chunks);
    if (!acc || !white) {
        free(acc);
        free(white);
        return -1;
    }
    const float scale = 1.f / (kx * ky);
    const unsigned short full = (unsigned short)(255 * ky);
    for (int dy = 0; dy < dh; dy++) {
        unsigned char *out = dst + (size_t)dy * 3 * dw;
        const unsigned char *rows = src + (Py_ssize_t)dy * ky * row_stride;
        int q = 0;
#ifdef AREA_SSE2
        const __m128i zero = _mm_setzero_si128(), ff = _mm_set1_epi8((char)0xFF);
        for (; 16 * q + 16 <= n; q++) {
            const unsigned char *p = rows + 16 * q;
            __m128i both = ff;
            for (int r = 0; r < ky; r++)
                both = _mm_and_si128(both, _mm_loadu_si128((const __m128i *)(p + r * row_stride)));
            __m128i *a = (__m128i *)(acc + 16 * q);
            white[q] = _mm_movemask_epi8(_mm_cmpeq_epi8(both, ff)) == 0xFFFF;
            if (white[q]) {
                _mm_storeu_si128(a, _mm_set1_epi16((short)full));
                _mm_storeu_si128(a + 1, _mm_set1_epi16((short)full));
                continue;
            }
            __m128i lo = zero, hi = zero;
            for (int r = 0; r < ky; r++) {
                __m128i v = _mm_loadu_si128((const __m128i *)(p + r * row_stride));
                lo = _mm_add_epi16(lo, _mm_unpacklo_epi8(v, zero));
                hi = _mm_add_epi16(hi, _mm_unpackhi_epi8(v, zero));
            }
            _mm_storeu_si128(a, lo);
            _mm_storeu_si128(a + 1, hi);
        }
#endif
        for (; q < chunks; q++) { /* the tail (and every chunk without SSE2), byte by byte */
            int end = 16 * q + 16 < n ? 16 * q + 16 : n, all = 1;
            for (int i = 16 * q; i < end; i++) {
                unsigned int sum = 0;
                for (int r = 0; r < ky; r++)
                    sum += rows[r * row_stride + i];
                acc[i] = (unsigned short)sum;
                all &= sum == full;
            }
            white[q] = (unsigned char)all;
        }
        for (int d = 0; d < dw; d++) {
            int b0 = 3 * kx * d, q0 = b0 / 16, q1 = (b0 + 3 * kx - 1) / 16, blank = 1;
            for (int j = q0; j <= q1 && blank; j++)
                blank = white[j];
            if (blank) {
                out[3 * d] = out[3 * d + 1] = out[3 * d + 2] = 255;
                continue;
            }
            for (int c = 0; c < 3; c++) {
                int sum = 0;
                const unsigned short *a = acc + b0 + c;
                for (int j = 0; j < kx; j++)
                    sum += a[3 * j];
                long v = lrintf((float)sum * scale);
                out[3 * d + c] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    free(acc);
    free(white);
    return 0;
}

/* OpenCV's test for its integer-ratio path: the scale within DBL_EPSILON of the nearest integer. */
static int integer_scale(int ssize, int dsize) {
    double scale = 1.0 / ((double)dsize / ssize);
    double k = nearbyint(scale);
    return fabs(scale - k) < DBL_EPSILON ? (int)k : 0;
}

static PyObject *py_resize(PyObject *self, PyObject *args) {
    PyObject *src_obj, *dst_obj;
    if (!PyArg_ParseTuple(args, "OO:resize", &src_obj, &dst_obj))
        return NULL;
    Py_buffer src, dst;
    if (PyObject_GetBuffer(src_obj, &src, PyBUF_RECORDS_RO) < 0)
        return NULL;
    if (PyObject_GetBuffer(dst_obj, &dst, PyBUF_RECORDS) < 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    PyObject *result = NULL;
    const char *why = NULL;
    if (src.ndim != 3 || dst.ndim != 3 || src.itemsize != 1 || dst.itemsize != 1)
        why = "src and dst must be 3-d uint8 arrays";
    else if (src.shape[2] != 3 || dst.shape[2] != 3)
        why = "src and dst must have 3 channels";
    else if (src.strides[2] != 1 || src.strides[1] != 3 || src.strides[0] < 3 * src.shape[1])
        why = "src must have contiguous pixels (strides (row, 3, 1))";
    else if (dst.strides[2] != 1 || dst.strides[1] != 3 || dst.strides[0] != 3 * dst.shape[1])
        why = "dst must be C-contiguous";
    else if (dst.shape[0] < 1 || dst.shape[1] < 1 || dst.shape[0] > src.shape[0] || dst.shape[1] > src.shape[1])
        why = "dst must be non-empty and no larger than src on either side";
    else if (src.shape[0] > 1 << 20 || src.shape[1] > 1 << 20)
        why = "src is too large";
    int h = 0, w = 0, dh = 0, dw = 0, kx = 0, ky = 0;
    if (!why) {
        h = (int)src.shape[0], w = (int)src.shape[1], dh = (int)dst.shape[0], dw = (int)dst.shape[1];
        kx = integer_scale(w, dw), ky = integer_scale(h, dh);
    }
    if (!why && kx && ky && (kx < 3 || ky < 3 || ky > 257)) {
        /* OpenCV's own vectorised 2x2 path rounds differently, a 1x1 "resize" is a copy, and over 257 rows a
         * block's column sums overflow 16 bits: not ours */
        result = Py_NewRef(Py_False);
        goto release;
    }
    if (why) {
        PyErr_SetString(PyExc_ValueError, why);
    } else {
        int failed;
        Py_BEGIN_ALLOW_THREADS
        if (kx && ky)
            failed = area_blocks((const unsigned char *)src.buf, src.strides[0], w, (unsigned char *)dst.buf, dh, dw, kx, ky);
        else
            failed = area_resize((const unsigned char *)src.buf, src.strides[0], h, w, (unsigned char *)dst.buf, dh, dw);
        Py_END_ALLOW_THREADS
        if (failed)
            PyErr_NoMemory();
        else
            result = Py_NewRef(Py_True);
    }
release:
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return result;
}

static PyMethodDef methods[] = {
    {"resize", py_resize, METH_VARARGS,
     "resize(src, dst) -> bool: area-resample src (h, w, 3) uint8 into dst (dh, dw, 3) uint8, dh <= h, dw <= w, "
     "with OpenCV INTER_AREA's arithmetic; False (dst untouched) where OpenCV's own 1x or 2x integer path applies "
     "or an integer ratio's blocks are over 257 rows tall."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_area", "OpenCV-exact area resampling (see iapo_gym.tools.resample).", -1, methods};

PyMODINIT_FUNC PyInit__area(void) { return PyModule_Create(&module); }
