/* The C interface's tests: every call, every error path, and two threads with two handles.
 * Built with -std=c99 -Wall -Werror -pedantic and run by `make test` (Tests/C/run.sh).
 * Usage: xai_c_test FIXTURES_DIR */
#define _POSIX_C_SOURCE 200809L
#include "xai.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0, checks = 0;
static const char *fixtures = ".";

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        checks++;                                                           \
        if (!(cond)) {                                                      \
            failures++;                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fprintf(stderr, " (last error: %s)\n", xai_last_error());      \
        }                                                                   \
    } while (0)

/* A status and a message that names `word`. */
static void expect_error(xai_status got, xai_status want, const char *word, const char *what) {
    checks++;
    if (got != want || strstr(xai_last_error(), word) == NULL) {
        failures++;
        fprintf(stderr, "FAIL %s: status %d (want %d), message \"%s\" should name \"%s\"\n", what, (int)got, (int)want,
                xai_last_error(), word);
    }
}

/* A float32 .npy file (little-endian, C order): its values and up to 4 dims. */
static float *read_npy(const char *path, int64_t shape[4], size_t *rank) {
    FILE *f = fopen(path, "rb");
    unsigned char head[10];
    char header[1024];
    size_t n = 1, header_len;
    float *data;
    const char *p;
    if (!f) return NULL;
    if (fread(head, 1, 10, f) != 10) { fclose(f); return NULL; }
    header_len = (size_t)head[8] | ((size_t)head[9] << 8);
    if (header_len >= sizeof header || fread(header, 1, header_len, f) != header_len) { fclose(f); return NULL; }
    header[header_len] = 0;
    p = strstr(header, "'shape': (");
    *rank = 0;
    if (!p) { fclose(f); return NULL; }
    p += 10;
    while (*p && *p != ')' && *rank < 4) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        shape[(*rank)++] = v;
        n *= (size_t)v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    data = malloc(n * sizeof(float));
    if (data && fread(data, sizeof(float), n, f) != n) { free(data); data = NULL; }
    fclose(f);
    return data;
}

static char *path_of(const char *relative) {
    static char buffers[8][1024];
    static int next = 0;
    char *b = buffers[next++ % 8];
    snprintf(b, 1024, "%s/%s", fixtures, relative);
    return b;
}

static int progress_calls = 0;
static int count_progress(int64_t done, int64_t total, void *user) {
    (void)user;
    if (done < 0 || total < 1 || done > total) return 1;
    progress_calls++;
    return 0;
}
static int cancel_after_first(int64_t done, int64_t total, void *user) {
    int *calls = user;
    (void)done; (void)total;
    return (*calls)++ >= 1;
}

/* Returns 0 on its first call and `value` after: any non-zero value must cancel (the header's
 * contract), not only the 1 the other callbacks return. */
typedef struct {
    int calls;
    int value;
} returning_after_first;

static int return_value_after_first(int64_t done, int64_t total, void *user) {
    returning_after_first *r = user;
    (void)done; (void)total;
    return r->calls++ >= 1 ? r->value : 0;
}

static void test_library(void) {
    char *json = NULL;
    CHECK(xai_api_version() >= XAI_API_VERSION, "api version %u", xai_api_version());
    CHECK(strlen(xai_version_string()) > 0, "version string");
    CHECK(strcmp(xai_last_error(), "") == 0, "no error before any call");
    CHECK(xai_methods_json(&json) == XAI_OK && strstr(json, "\"gradcam\"") && strstr(json, "\"steps\""), "methods json");
    xai_string_free(json);
    json = NULL;
    CHECK(xai_devices_json(&json) == XAI_OK && strstr(json, "\"cpu\""), "devices json");
    xai_string_free(json);
    expect_error(xai_methods_json(NULL), XAI_ERR_INVALID_ARGUMENT, "out_json", "methods json into NULL");
    expect_error(xai_devices_json(NULL), XAI_ERR_INVALID_ARGUMENT, "out_json", "devices json into NULL");
    xai_string_free(NULL);
    xai_model_free(NULL);
    xai_result_free(NULL);
}

static void test_open_errors(void) {
    xai_model *m = (xai_model *)0x1; /* a failed call must leave this untouched */
    char garbage[256];
    FILE *f;
    size_t i;
    expect_error(xai_model_open(NULL, "cpu", &m), XAI_ERR_INVALID_ARGUMENT, "path_or_zoo", "open NULL path");
    CHECK(m == (xai_model *)0x1, "out-parameter untouched on failure");
    expect_error(xai_model_open("/nonexistent/model.onnx", "cpu", &m), XAI_ERR_FILE, "/nonexistent/model.onnx", "open missing file");
    expect_error(xai_model_open("no_such_zoo_model", "cpu", &m), XAI_ERR_INVALID_ARGUMENT, "no_such_zoo_model", "open unknown zoo name");
    expect_error(xai_model_open(path_of("models/small_resnet/model.onnx"), "tpu", &m), XAI_ERR_INVALID_ARGUMENT, "tpu", "open on a bad device");
    expect_error(xai_model_open(path_of("models/small_resnet/model.onnx"), "gpu:99", &m), XAI_ERR_DEVICE, "99", "open on a missing GPU");
    expect_error(xai_model_open(path_of("models/small_resnet/model.onnx"), "cpu", NULL), XAI_ERR_INVALID_ARGUMENT, "out_model", "open into NULL");
    /* Hostile bytes as an ONNX file. */
    srand(7);
    for (i = 0; i < sizeof garbage; i++) garbage[i] = (char)(rand() & 0xff);
    f = fopen("xai_c_test_garbage.onnx", "wb");
    if (f) {
        fwrite(garbage, 1, sizeof garbage, f);
        fclose(f);
        expect_error(xai_model_open("xai_c_test_garbage.onnx", "cpu", &m), XAI_ERR_FILE, "xai_c_test_garbage.onnx", "open garbage");
        remove("xai_c_test_garbage.onnx");
    }
    CHECK(m == (xai_model *)0x1, "out-parameter untouched after every failure");
}

static void test_model(xai_model *m, const float *input, const int64_t *shape, const float *logits_ref) {
    char *json = NULL;
    float logits[20], bad[8];
    int64_t wrong_shape[4] = {2, 3, 64, 63}, negative[4] = {-1, 3, 64, 64}, huge[4] = {INT64_MAX, 3, 64, 64};
    size_t i;
    double worst = 0;
    CHECK(xai_model_info_json(m, &json) == XAI_OK && strstr(json, "\"inputShape\":[1,3,64,64]") && strstr(json, "\"classes\":10"),
          "model info: %s", json ? json : "");
    xai_string_free(json);
    expect_error(xai_model_info_json(NULL, &json), XAI_ERR_INVALID_ARGUMENT, "model", "info of NULL");

    CHECK(xai_predict(m, input, shape, 4, logits, 20) == XAI_OK, "predict");
    for (i = 0; i < 20; i++) {
        double d = fabs(logits[i] - logits_ref[i]) / (1 + fabs(logits_ref[i]));
        if (d > worst) worst = d;
    }
    CHECK(worst < 1e-4, "logits against onnxruntime's: worst relative error %g", worst);
    expect_error(xai_predict(m, NULL, shape, 4, logits, 20), XAI_ERR_INVALID_ARGUMENT, "input", "predict NULL input");
    expect_error(xai_predict(m, input, NULL, 4, logits, 20), XAI_ERR_INVALID_ARGUMENT, "shape", "predict NULL shape");
    expect_error(xai_predict(m, input, shape, 3, logits, 20), XAI_ERR_INVALID_ARGUMENT, "rank", "predict rank 3");
    expect_error(xai_predict(m, input, wrong_shape, 4, logits, 20), XAI_ERR_INVALID_ARGUMENT, "64", "predict wrong width");
    expect_error(xai_predict(m, input, negative, 4, logits, 20), XAI_ERR_INVALID_ARGUMENT, "input", "predict negative batch");
    expect_error(xai_predict(m, input, huge, 4, logits, 20), XAI_ERR_OUT_OF_MEMORY, "input", "predict huge batch");
    expect_error(xai_predict(m, input, shape, 4, bad, 8), XAI_ERR_INVALID_ARGUMENT, "logits_len", "predict short logits");
    expect_error(xai_predict(m, input, shape, 4, NULL, 20), XAI_ERR_INVALID_ARGUMENT, "logits", "predict NULL logits");
    expect_error(xai_predict(NULL, input, shape, 4, logits, 20), XAI_ERR_INVALID_ARGUMENT, "model", "predict NULL model");
    {
        size_t n = 2 * 3 * 64 * 64;
        float *nan_input = malloc(n * sizeof(float));
        memcpy(nan_input, input, n * sizeof(float));
        nan_input[100] = NAN;
        expect_error(xai_predict(m, nan_input, shape, 4, logits, 20), XAI_ERR_INVALID_ARGUMENT, "input", "predict NaN input");
        free(nan_input);
    }
    CHECK(strcmp(xai_last_error(), "") != 0, "the last error stays until the next call");
    CHECK(xai_predict(m, input, shape, 4, logits, 20) == XAI_OK && strcmp(xai_last_error(), "") == 0, "success clears the last error");
}

static void test_explain(xai_model *m, const float *input, const int64_t *shape, const float *logits_ref) {
    xai_result *r = NULL, *untouched = (xai_result *)0x1;
    const float *data = NULL;
    const int64_t *dims = NULL;
    size_t rank = 99;
    char *json = NULL;
    int64_t targets[2] = {1, 3}, one[1] = {7}, bad_target[1] = {10};
    int calls = 0;

    CHECK(xai_explain(m, "gradcam", input, shape, 4, NULL, 0, NULL, NULL, NULL, &r) == XAI_OK, "gradcam");
    CHECK(xai_result_tensor(r, "map", &data, &dims, &rank) == XAI_OK && rank == 3 && dims[0] == 2 && dims[1] == 64 && dims[2] == 64,
          "map [2, 64, 64]");
    CHECK(data != NULL && isfinite(data[0]), "map values");
    CHECK(xai_result_tensor(r, "raw", &data, &dims, &rank) == XAI_OK && data != NULL && rank == 3, "gradcam raw at layer resolution");
    CHECK(xai_result_tensor(r, "segments", &data, &dims, &rank) == XAI_OK && data == NULL && rank == 0, "no segments for gradcam");
    expect_error(xai_result_tensor(r, "nonsense", &data, &dims, &rank), XAI_ERR_INVALID_ARGUMENT, "nonsense", "unknown tensor name");
    expect_error(xai_result_tensor(r, NULL, &data, &dims, &rank), XAI_ERR_INVALID_ARGUMENT, "name", "NULL tensor name");
    expect_error(xai_result_tensor(r, "map", NULL, &dims, &rank), XAI_ERR_INVALID_ARGUMENT, "data", "NULL data out");
    expect_error(xai_result_tensor(NULL, "map", &data, &dims, &rank), XAI_ERR_INVALID_ARGUMENT, "result", "NULL result");
    CHECK(xai_result_meta_json(r, &json) == XAI_OK && strstr(json, "\"targets\"") && strstr(json, "\"scores\""), "meta: %s", json ? json : "");
    {
        /* The explained class is each image's top-1, and its score the logit predict gives. */
        int best0 = 0, best1 = 0, k;
        char want[64];
        for (k = 1; k < 10; k++) {
            if (logits_ref[k] > logits_ref[best0]) best0 = k;
            if (logits_ref[10 + k] > logits_ref[10 + best1]) best1 = k;
        }
        snprintf(want, sizeof want, "\"targets\":[%d,%d]", best0, best1);
        CHECK(json && strstr(json, want), "top-1 targets %s in %s", want, json ? json : "");
    }
    xai_string_free(json);
    expect_error(xai_result_meta_json(r, NULL), XAI_ERR_INVALID_ARGUMENT, "out_json", "meta into NULL");
    xai_result_free(r);

    /* Targets: one per image, one for all; knobs; progress. */
    CHECK(xai_explain(m, "ig", input, shape, 4, targets, 2, "{\"steps\": 8, \"rule\": \"middle\"}", count_progress, NULL, &r) == XAI_OK,
          "ig with knobs and per-image targets");
    CHECK(progress_calls >= 2, "progress called before and after (%d)", progress_calls);
    CHECK(xai_result_meta_json(r, &json) == XAI_OK && strstr(json, "\"targets\":[1,3]") && strstr(json, "completenessDelta")
          && strstr(json, "\"steps\":\"8\""), "ig meta: %s", json ? json : "");
    xai_string_free(json);
    CHECK(xai_result_tensor(r, "raw", &data, &dims, &rank) == XAI_OK && rank == 4 && dims[1] == 3, "ig raw [2, 3, 64, 64]");
    xai_result_free(r);
    CHECK(xai_explain(m, "saliency", input, shape, 4, one, 1, NULL, NULL, NULL, &r) == XAI_OK, "one target for all");
    CHECK(xai_result_meta_json(r, &json) == XAI_OK && strstr(json, "\"targets\":[7,7]"), "targets 7, 7: %s", json ? json : "");
    xai_string_free(json);
    xai_result_free(r);
    CHECK(xai_explain(m, "lime", input, shape, 4, NULL, 0, "{\"samples\": 16, \"segmentation\": \"grid\", \"segments\": 4}", NULL, NULL, &r) == XAI_OK,
          "lime on a grid");
    CHECK(xai_result_tensor(r, "segments", &data, &dims, &rank) == XAI_OK && data != NULL && rank == 3, "lime segments");
    xai_result_free(r);

    /* Cancellation through the callback. */
    expect_error(xai_explain(m, "occlusion", input, shape, 4, NULL, 0, "{\"window\": 8, \"stride\": 8, \"batch\": 4}", cancel_after_first,
                             &calls, &untouched), XAI_ERR_CANCELLED, "cancel", "cancelled occlusion");
    calls = 0;
    expect_error(xai_explain(m, "saliency", input, shape, 4, NULL, 0, NULL, cancel_after_first, &calls, &untouched), XAI_ERR_CANCELLED,
                 "cancel", "cancelled after the last step");

    {
        /* Every non-zero return cancels, through xai_explain, xai_explain2 and xai_evaluate; 0 runs on. */
        const int values[] = {-1, 2, 255, INT_MAX, INT_MIN};
        char what[96];
        size_t k;
        for (k = 0; k < sizeof values / sizeof values[0]; k++) {
            returning_after_first state = {0, values[k]};
            xai_explain_options eo2;
            xai_evaluate_options ev;
            xai_tensor_view view = {input, shape, 4};
            snprintf(what, sizeof what, "xai_explain with a callback returning %d", values[k]);
            expect_error(xai_explain(m, "occlusion", input, shape, 4, NULL, 0, "{\"window\": 8, \"stride\": 8, \"batch\": 4}",
                                     return_value_after_first, &state, &untouched), XAI_ERR_CANCELLED, "cancel", what);
            memset(&eo2, 0, sizeof eo2);
            eo2.knobs_json = "{\"window\": 8, \"stride\": 8, \"batch\": 4}";
            eo2.progress = return_value_after_first;
            eo2.user = &state;
            state.calls = 0;
            snprintf(what, sizeof what, "xai_explain2 with a callback returning %d", values[k]);
            expect_error(xai_explain2(m, "occlusion", &view, &eo2, &untouched), XAI_ERR_CANCELLED, "cancel", what);
            memset(&ev, 0, sizeof ev);
            ev.method = "occlusion";
            ev.explain = eo2;
            state.calls = 0;
            snprintf(what, sizeof what, "xai_evaluate with a callback returning %d", values[k]);
            expect_error(xai_evaluate(m, "sparseness", &view, &ev, &untouched), XAI_ERR_CANCELLED, "cancel", what);
        }
        {
            returning_after_first zero = {0, 0};
            CHECK(xai_explain(m, "occlusion", input, shape, 4, NULL, 0, "{\"window\": 8, \"stride\": 8, \"batch\": 4}",
                              return_value_after_first, &zero, &r) == XAI_OK && zero.calls >= 2,
                  "a callback returning 0 runs to the end (%d calls)", zero.calls);
            xai_result_free(r);
        }
    }

    /* Errors, each naming what is wrong. */
    expect_error(xai_explain(m, "nonsense", input, shape, 4, NULL, 0, NULL, NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "nonsense", "unknown method");
    expect_error(xai_explain(m, NULL, input, shape, 4, NULL, 0, NULL, NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "method", "NULL method");
    expect_error(xai_explain(m, "ig", input, shape, 4, NULL, 0, "{\"stepz\": 3}", NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "stepz", "unknown knob");
    expect_error(xai_explain(m, "ig", input, shape, 4, NULL, 0, "{\"steps\": \"many\"}", NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "steps", "mistyped knob");
    expect_error(xai_explain(m, "ig", input, shape, 4, NULL, 0, "{\"steps\": 0}", NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "steps", "knob out of range");
    expect_error(xai_explain(m, "ig", input, shape, 4, NULL, 0, "{\"rule\": \"simpson\"}", NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "rule", "bad choice");
    expect_error(xai_explain(m, "ig", input, shape, 4, NULL, 0, "{steps", NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "configuration", "bad JSON");
    expect_error(xai_explain(m, "ig", input, shape, 4, NULL, 0, "[1]", NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "configuration", "JSON not an object");
    expect_error(xai_explain(m, "gradcam", input, shape, 4, NULL, 0, "{\"layer\": \"no_such_layer\"}", NULL, NULL, &untouched),
                 XAI_ERR_INVALID_ARGUMENT, "no_such_layer", "unknown layer");
    expect_error(xai_explain(m, "gradcam", input, shape, 4, bad_target, 1, NULL, NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "targets", "target out of range");
    expect_error(xai_explain(m, "gradcam", input, shape, 4, targets, 3, NULL, NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "n_targets", "three targets for two images");
    expect_error(xai_explain(m, "gradcam", input, shape, 4, NULL, 2, NULL, NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "targets", "NULL targets");
    expect_error(xai_explain(m, "gradcam", input, shape, 2, NULL, 0, NULL, NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "rank", "rank 2");
    expect_error(xai_explain(m, "gradcam", input, shape, 4, NULL, 0, NULL, NULL, NULL, NULL), XAI_ERR_INVALID_ARGUMENT, "out_result", "NULL out");
    expect_error(xai_explain(NULL, "gradcam", input, shape, 4, NULL, 0, NULL, NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "model", "NULL model");
    CHECK(untouched == (xai_result *)0x1, "out-parameter untouched after every failure");
}

static void test_preprocess(xai_model *m) {
    xai_result *r = NULL, *untouched = (xai_result *)0x1;
    const char *paths[2];
    const float *data = NULL;
    const int64_t *dims = NULL;
    size_t rank = 0;
    char *json = NULL;
    paths[0] = path_of("images/photo.jpg");
    paths[1] = path_of("images/rgb8.png");
    CHECK(xai_preprocess(m, paths, 2, NULL, &r) == XAI_OK, "preprocess two pictures");
    CHECK(xai_result_tensor(r, "input", &data, &dims, &rank) == XAI_OK && rank == 4 && dims[0] == 2 && dims[1] == 3 && dims[2] == 64 && dims[3] == 64,
          "input [2, 3, 64, 64]");
    CHECK(xai_result_meta_json(r, &json) == XAI_OK && strstr(json, "photo"), "preprocess meta: %s", json ? json : "");
    xai_string_free(json);
    xai_result_free(r);
    CHECK(xai_preprocess(m, paths, 1, "{\"preset\": \"none\", \"resize\": 80}", &r) == XAI_OK, "preprocess with options");
    xai_result_free(r);
    paths[1] = "/nonexistent.png";
    expect_error(xai_preprocess(m, paths, 2, NULL, &untouched), XAI_ERR_FILE, "/nonexistent.png", "missing picture");
    expect_error(xai_preprocess(m, paths, 0, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "n_paths", "no pictures");
    expect_error(xai_preprocess(m, NULL, 1, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "paths", "NULL paths");
    expect_error(xai_preprocess(m, paths, 1, "{\"presett\": 1}", &untouched), XAI_ERR_INVALID_ARGUMENT, "presett", "unknown option");
    expect_error(xai_preprocess(m, paths, 1, "{\"resize\": 0}", &untouched), XAI_ERR_INVALID_ARGUMENT, "resize", "resize 0");
    CHECK(untouched == (xai_result *)0x1, "out-parameter untouched after every failure");
}

static void test_overlay(void) {
    unsigned char rgb[4 * 6 * 3], out[4 * 6 * 3];
    float map[2 * 3] = {0, 1, 2, 3, 4, 5};
    size_t i;
    int changed = 0;
    for (i = 0; i < sizeof rgb; i++) rgb[i] = (unsigned char)(i * 7);
    CHECK(xai_overlay(rgb, 4, 6, map, 2, 3, "{\"colormap\": \"jet\", \"alpha\": 0.5}", out) == XAI_OK, "overlay");
    for (i = 0; i < sizeof rgb; i++) changed |= out[i] != rgb[i];
    CHECK(changed, "overlay draws");
    expect_error(xai_overlay(rgb, 4, 6, map, 2, 3, "{\"colormap\": \"rainbow\"}", out), XAI_ERR_INVALID_ARGUMENT, "colormap", "bad colormap");
    expect_error(xai_overlay(rgb, 4, 6, map, 2, 3, "{\"alpha\": 2}", out), XAI_ERR_INVALID_ARGUMENT, "alpha", "alpha 2");
    expect_error(xai_overlay(rgb, 0, 6, map, 2, 3, NULL, out), XAI_ERR_INVALID_ARGUMENT, "height", "height 0");
    expect_error(xai_overlay(rgb, 4, 6, map, -2, 3, NULL, out), XAI_ERR_INVALID_ARGUMENT, "map_height", "negative map height");
    expect_error(xai_overlay(NULL, 4, 6, map, 2, 3, NULL, out), XAI_ERR_INVALID_ARGUMENT, "rgb", "NULL picture");
    expect_error(xai_overlay(rgb, 4, 6, map, 2, 3, NULL, NULL), XAI_ERR_INVALID_ARGUMENT, "out", "NULL out");
}

/* Two threads, two handles, explaining at once: each must get what one thread alone gets. */
struct job {
    const float *input;
    const int64_t *shape;
    const float *expected;
    int ok;
};

static void *explain_repeatedly(void *arg) {
    struct job *j = arg;
    xai_model *m = NULL;
    int round;
    j->ok = xai_model_open(path_of("models/small_resnet/model.onnx"), "cpu", &m) == XAI_OK;
    for (round = 0; round < 3 && j->ok; round++) {
        xai_result *r = NULL;
        const float *data = NULL;
        const int64_t *dims = NULL;
        size_t rank = 0, i;
        j->ok = xai_explain(m, "ig", j->input, j->shape, 4, NULL, 0, "{\"steps\": 16}", NULL, NULL, &r) == XAI_OK
                && xai_result_tensor(r, "map", &data, &dims, &rank) == XAI_OK;
        for (i = 0; j->ok && i < 2 * 64 * 64; i++) j->ok = fabsf(data[i] - j->expected[i]) <= 1e-5f * (1 + fabsf(j->expected[i]));
        xai_result_free(r);
    }
    xai_model_free(m);
    return NULL;
}

static void test_two_threads(xai_model *m, const float *input, const int64_t *shape) {
    xai_result *r = NULL;
    const float *data = NULL;
    const int64_t *dims = NULL;
    size_t rank = 0;
    pthread_t threads[2];
    struct job jobs[2];
    int t;
    CHECK(xai_explain(m, "ig", input, shape, 4, NULL, 0, "{\"steps\": 16}", NULL, NULL, &r) == XAI_OK
          && xai_result_tensor(r, "map", &data, &dims, &rank) == XAI_OK, "ig alone");
    for (t = 0; t < 2; t++) {
        jobs[t].input = input;
        jobs[t].shape = shape;
        jobs[t].expected = data;
        jobs[t].ok = 0;
        pthread_create(&threads[t], NULL, explain_repeatedly, &jobs[t]);
    }
    for (t = 0; t < 2; t++) pthread_join(threads[t], NULL);
    for (t = 0; t < 2; t++) CHECK(jobs[t].ok, "thread %d: same maps as one thread alone", t);
    xai_result_free(r);
}

/* Version 2: tensors in (a baseline, a feature mask) and metrics. */
static void test_explain2_and_evaluate(xai_model *m, const float *input, const int64_t *shape) {
    xai_result *a = NULL, *b = NULL, *e = NULL, *untouched = (xai_result *)0x1;
    const float *ma = NULL, *mb = NULL, *scores = NULL, *maps = NULL;
    const int64_t *dims = NULL;
    size_t rank = 0, i, n = 64 * 64;
    char *json = NULL;
    static float zeros[3 * 64 * 64], quadrants[64 * 64], twice[2 * 3 * 64 * 64];
    int64_t image_shape[3] = {3, 64, 64}, mask_shape[2] = {64, 64}, bad_shape[3] = {3, 32, 32}, one_shape[4] = {1, 3, 64, 64};
    int64_t two_shape[4] = {2, 3, 64, 64};
    xai_tensor_view batch = {input, shape, 4}, first = {input, one_shape, 4};
    xai_tensor_view zero = {zeros, image_shape, 3}, itself = {input, image_shape, 3}, mask = {quadrants, mask_shape, 2}, bad = {zeros, bad_shape, 3};
    xai_tensor_view two = {twice, two_shape, 4};
    xai_explain_options o;
    xai_evaluate_options eo;
    float largest = 0;

    for (i = 0; i < n; i++) quadrants[i] = (float)(2 * ((i / 64) / 32) + (i % 64) / 32);

    /* No options: top-1, default knobs. */
    CHECK(xai_explain2(m, "gradcam", &batch, NULL, &a) == XAI_OK, "explain2 without options");
    xai_result_free(a);

    /* A zero baseline tensor gives the map of the "zero" knob, bit for bit; the image as its own
     * baseline gives nothing to attribute. */
    memset(&o, 0, sizeof o);
    o.knobs_json = "{\"steps\": 8}";
    CHECK(xai_explain2(m, "ig", &first, &o, &a) == XAI_OK, "ig with the zero knob");
    o.baseline = &zero;
    CHECK(xai_explain2(m, "ig", &first, &o, &b) == XAI_OK, "ig with a zero baseline tensor");
    CHECK(xai_result_tensor(a, "map", &ma, &dims, &rank) == XAI_OK && xai_result_tensor(b, "map", &mb, &dims, &rank) == XAI_OK
          && memcmp(ma, mb, n * sizeof(float)) == 0, "zero tensor = zero knob");
    CHECK(xai_result_meta_json(b, &json) == XAI_OK && strstr(json, "\"baseline\":\"tensor\"") && strstr(json, "\"provenance\"")
          && strstr(json, "\"precision\":\"exact\""), "recorded: %s", json ? json : "");
    xai_string_free(json);
    json = NULL;
    xai_result_free(a);
    xai_result_free(b);
    o.baseline = &itself;
    CHECK(xai_explain2(m, "ig", &first, &o, &a) == XAI_OK, "ig from the image to itself");
    CHECK(xai_result_tensor(a, "map", &ma, &dims, &rank) == XAI_OK, "its map");
    for (i = 0; ma && i < n; i++) largest = fabsf(ma[i]) > largest ? fabsf(ma[i]) : largest;
    CHECK(largest == 0, "nothing to attribute: max |map| %g", (double)largest);
    xai_result_free(a);
    o.baseline = &bad;
    expect_error(xai_explain2(m, "ig", &first, &o, &untouched), XAI_ERR_INVALID_ARGUMENT, "baseline", "baseline of the wrong size");
    /* GradientSHAP draws from K baselines [K, 3, H, W]: with every one the image itself there is
     * nothing to attribute; IG takes one baseline and refuses K. */
    memcpy(twice, input, 3 * n * sizeof(float));
    memcpy(twice + 3 * n, input, 3 * n * sizeof(float));
    o.baseline = &two;
    o.knobs_json = "{\"samples\": 4}";
    CHECK(xai_explain2(m, "gradientshap", &first, &o, &a) == XAI_OK, "gradientshap from two baselines");
    CHECK(xai_result_tensor(a, "map", &ma, &dims, &rank) == XAI_OK, "its map");
    largest = 0;
    for (i = 0; ma && i < n; i++) largest = fabsf(ma[i]) > largest ? fabsf(ma[i]) : largest;
    CHECK(largest == 0, "gradientshap: nothing to attribute, max |map| %g", (double)largest);
    xai_result_free(a);
    expect_error(xai_explain2(m, "ig", &first, &o, &untouched), XAI_ERR_INVALID_ARGUMENT, "baseline", "ig given two baselines");
    o.baseline = NULL;

    /* A feature mask as a tensor: the same partition as a 2x2 grid gives KernelSHAP's map. */
    o.knobs_json = "{\"samples\": 64}";
    o.feature_mask = &mask;
    CHECK(xai_explain2(m, "kernelshap", &first, &o, &a) == XAI_OK, "kernelshap on a given mask");
    o.feature_mask = NULL;
    o.knobs_json = "{\"samples\": 64, \"segmentation\": \"grid\", \"segments\": 2}";
    CHECK(xai_explain2(m, "kernelshap", &first, &o, &b) == XAI_OK, "kernelshap on a 2x2 grid");
    CHECK(xai_result_tensor(a, "map", &ma, &dims, &rank) == XAI_OK && xai_result_tensor(b, "map", &mb, &dims, &rank) == XAI_OK, "maps");
    largest = 0;
    for (i = 0; ma && mb && i < n; i++) largest = fabsf(ma[i] - mb[i]) > largest ? fabsf(ma[i] - mb[i]) : largest;
    CHECK(largest < 1e-5f, "mask tensor = grid: max difference %g", (double)largest);
    xai_result_free(a);
    xai_result_free(b);

    /* Metrics: the maps made now, or given; the same scores either way. */
    CHECK(xai_metrics_json(&json) == XAI_OK && strstr(json, "\"mprt\"") && strstr(json, "\"sensitivitySamples\""), "metrics json");
    xai_string_free(json);
    json = NULL;
    memset(&eo, 0, sizeof eo);
    eo.method = "gradcam";
    eo.metric_knobs_json = "{\"step\": 512}";
    CHECK(xai_evaluate(m, "deletion,sparseness", &batch, &eo, &e) == XAI_OK, "evaluate gradcam's maps");
    CHECK(xai_result_tensor(e, "scores", &scores, &dims, &rank) == XAI_OK && rank == 2 && dims[0] == 2 && dims[1] == 2, "scores [2, 2]");
    CHECK(xai_result_meta_json(e, &json) == XAI_OK && strstr(json, "\"name\":\"deletion\"") && strstr(json, "\"direction\":\"lower\""),
          "evaluate meta: %s", json ? json : "");
    xai_string_free(json);
    json = NULL;
    CHECK(xai_result_tensor(e, "map", &maps, &dims, &rank) == XAI_OK && rank == 3, "the maps scored");
    {
        int64_t map_shape[3] = {2, 64, 64};
        xai_tensor_view given = {maps, map_shape, 3};
        const float *again = NULL;
        xai_evaluate_options go;
        memset(&go, 0, sizeof go);
        go.maps = &given;
        go.metric_knobs_json = "{\"step\": 512}";
        CHECK(xai_evaluate(m, "deletion,sparseness", &batch, &go, &b) == XAI_OK, "evaluate given maps");
        CHECK(xai_result_tensor(b, "scores", &again, &dims, &rank) == XAI_OK && scores && again && memcmp(scores, again, 4 * sizeof(float)) == 0,
              "given maps score alike");
        expect_error(xai_evaluate(m, "sensitivity_max", &batch, &go, &untouched), XAI_ERR_INVALID_ARGUMENT, "method", "re-explaining without a method");
        xai_result_free(b);
    }
    xai_result_free(e);
    expect_error(xai_evaluate(m, "pointing_game", &batch, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "masks", "a mask metric without masks");
    expect_error(xai_evaluate(m, "accuracy", &batch, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "accuracy", "unknown metric");
    expect_error(xai_evaluate(m, "deletion", &batch, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "maps", "no maps and no method");
    eo.metric_knobs_json = "{\"faithfulnessSubset\": 4096}";
    expect_error(xai_evaluate(m, "faithfulness_correlation", &batch, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "faithfulnessSubset", "subset too large");
    expect_error(xai_evaluate(m, "deletion", NULL, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "input", "NULL input");
    CHECK(untouched == (xai_result *)0x1, "failed calls leave the out-parameter alone");
    {
        /* Precision: "fast" is recorded; anything else is refused by name. */
        xai_model *fast = NULL, *no = (xai_model *)0x1;
        char *info = NULL;
        CHECK(xai_model_open2(path_of("models/small_resnet/model.onnx"), "cpu", "{\"precision\": \"fast\"}", &fast) == XAI_OK, "open fast");
        CHECK(fast && xai_model_info_json(fast, &info) == XAI_OK && strstr(info, "\"precision\":\"fast\""), "fast info: %s", info ? info : "");
        xai_string_free(info);
        xai_model_free(fast);
        expect_error(xai_model_open2(path_of("models/small_resnet/model.onnx"), "cpu", "{\"precision\": \"double\"}", &no), XAI_ERR_INVALID_ARGUMENT,
                     "precision", "unknown precision");
        expect_error(xai_model_open2(path_of("models/small_resnet/model.onnx"), "cpu", "{\"speed\": 1}", &no), XAI_ERR_INVALID_ARGUMENT, "speed",
                     "unknown model option");
        CHECK(no == (xai_model *)0x1, "failed opens leave the out-parameter alone");
    }
}

int main(int argc, char **argv) {
    int64_t shape[4];
    size_t rank = 0, lrank = 0;
    int64_t lshape[4];
    float *input, *logits;
    xai_model *m = NULL;
    if (argc > 1) fixtures = argv[1];
    input = read_npy(path_of("models/small_resnet/input.npy"), shape, &rank);
    logits = read_npy(path_of("models/small_resnet/logits.npy"), lshape, &lrank);
    if (!input || rank != 4 || !logits || lrank != 2) {
        fprintf(stderr, "cannot read the fixtures under %s\n", fixtures);
        return 2;
    }
    test_library();
    test_open_errors();
    CHECK(xai_model_open(path_of("models/small_resnet/model.onnx"), "cpu", &m) == XAI_OK, "open the fixture model");
    if (m) {
        test_model(m, input, shape, logits);
        test_explain(m, input, shape, logits);
        test_preprocess(m);
        test_explain2_and_evaluate(m, input, shape);
        test_two_threads(m, input, shape);
    }
    test_overlay();
    xai_model_free(m);
    free(input);
    free(logits);
    printf("C interface: %d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
