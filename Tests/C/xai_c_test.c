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

/* Every string of a NULL-terminated list appears in `json`. */
static int has_all(const char *json, const char *const *keys) {
    if (json == NULL) return 0;
    for (; *keys; keys++)
        if (strstr(json, *keys) == NULL) {
            fprintf(stderr, "  missing %s\n", *keys);
            return 0;
        }
    return 1;
}

/* The header's progress contract: (0, 1) first, (1, 1) last, 0 <= done <= total between, and every
 * call on the thread that made the call. */
typedef struct {
    int calls, bad;
    int64_t first_done, first_total, last_done, last_total;
    pthread_t thread;
} progress_log;

static int record_progress(int64_t done, int64_t total, void *user) {
    progress_log *l = user;
    if (l->calls == 0) {
        l->first_done = done;
        l->first_total = total;
    }
    l->last_done = done;
    l->last_total = total;
    if (done < 0 || total < 1 || done > total || !pthread_equal(l->thread, pthread_self())) l->bad++;
    l->calls++;
    return 0;
}

static void start_log(progress_log *l) {
    memset(l, 0, sizeof *l);
    l->thread = pthread_self();
}

static int follows_contract(const progress_log *l) {
    return l->calls >= 2 && l->bad == 0 && l->first_done == 0 && l->first_total == 1 && l->last_done == 1 && l->last_total == 1;
}

/* Random-ish values in [-1, 1), never 0. */
static void fill_random(float *v, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        v[i] = (float)(rand() % 2000 - 1000) / 1000.0f;
        if (v[i] == 0) v[i] = 0.25f;
    }
}

/* A minimal ONNX model, protobuf written by hand: x [1, 3, 8, 8] -> Relu "first" -> `op` "my_op" -> y.
 * Field numbers from onnx.proto. */
typedef struct {
    unsigned char b[512];
    size_t n;
} pb;
static void pb_varint(pb *p, uint64_t v) {
    while (v >= 0x80) {
        p->b[p->n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p->b[p->n++] = (unsigned char)v;
}
static void pb_int(pb *p, int field, uint64_t v) {
    pb_varint(p, (uint64_t)field << 3);
    pb_varint(p, v);
}
static void pb_bytes(pb *p, int field, const void *data, size_t len) {
    pb_varint(p, ((uint64_t)field << 3) | 2);
    pb_varint(p, len);
    memcpy(p->b + p->n, data, len);
    p->n += len;
}
static void pb_string(pb *p, int field, const char *text) { pb_bytes(p, field, text, strlen(text)); }
static void pb_message(pb *p, int field, const pb *m) { pb_bytes(p, field, m->b, m->n); }

static int write_onnx_with_op(const char *path, const char *op) {
    static pb dim, shape, tensor, type, in, out, relu, last, graph, opset, model;
    const int64_t dims[4] = {1, 3, 8, 8};
    FILE *f;
    int k;
    shape.n = 0;
    for (k = 0; k < 4; k++) {
        dim.n = 0;
        pb_int(&dim, 1, (uint64_t)dims[k]); /* Dimension.dim_value */
        pb_message(&shape, 1, &dim);        /* TensorShapeProto.dim */
    }
    tensor.n = 0;
    pb_int(&tensor, 1, 1); /* elem_type FLOAT */
    pb_message(&tensor, 2, &shape);
    type.n = 0;
    pb_message(&type, 1, &tensor); /* TypeProto.tensor_type */
    in.n = 0;
    pb_string(&in, 1, "x");
    pb_message(&in, 2, &type);
    out.n = 0;
    pb_string(&out, 1, "y");
    relu.n = 0;
    pb_string(&relu, 1, "x");
    pb_string(&relu, 2, "a");
    pb_string(&relu, 3, "first");
    pb_string(&relu, 4, "Relu");
    last.n = 0;
    pb_string(&last, 1, "a");
    pb_string(&last, 2, "y");
    pb_string(&last, 3, "my_op");
    pb_string(&last, 4, op);
    graph.n = 0;
    pb_message(&graph, 1, &relu);
    pb_message(&graph, 1, &last);
    pb_string(&graph, 2, "g");
    pb_message(&graph, 11, &in);
    pb_message(&graph, 12, &out);
    opset.n = 0;
    pb_int(&opset, 2, 17);
    model.n = 0;
    pb_int(&model, 1, 8); /* ir_version */
    pb_message(&model, 7, &graph);
    pb_message(&model, 8, &opset);
    f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(model.b, 1, model.n, f);
    fclose(f);
    return 1;
}

/* A file of `n` random bytes after `magic`. */
static int write_garbage(const char *path, const char *magic, size_t magic_len, size_t n) {
    FILE *f = fopen(path, "wb");
    size_t i;
    if (!f) return 0;
    fwrite(magic, 1, magic_len, f);
    for (i = 0; i < n; i++) fputc(rand() & 0xff, f);
    fclose(f);
    return 1;
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
    expect_error(xai_metrics_json(NULL), XAI_ERR_INVALID_ARGUMENT, "out_json", "metrics json into NULL");
    {
        /* The listings hold what the header says they hold; the version string is static storage. */
        static const char *const method_keys[] = {"\"methods\"", "\"knobs\"", "\"name\"", "\"summary\"", "\"type\"", "\"default\"",
                                                  "\"minimum\"", "\"maximum\"", "\"choices\"", "\"steps\"", "\"rule\"", "\"samples\"", "\"seed\"", NULL};
        static const char *const metric_keys[] = {"\"metrics\"", "\"knobs\"", "\"name\"", "\"summary\"", "\"direction\"", "\"needsMasks\"",
                                                  "\"reexplains\"", NULL};
        static const char *const device_keys[] = {"\"devices\"", "\"device\":\"cpu\"", "\"isGPU\"", "\"name\"", NULL};
        const char *v1 = xai_version_string(), *v2 = xai_version_string();
        json = NULL;
        CHECK(xai_methods_json(&json) == XAI_OK && has_all(json, method_keys), "methods json fields");
        xai_string_free(json);
        json = NULL;
        CHECK(xai_metrics_json(&json) == XAI_OK && has_all(json, metric_keys), "metrics json fields");
        xai_string_free(json);
        json = NULL;
        CHECK(xai_devices_json(&json) == XAI_OK && has_all(json, device_keys), "devices json fields");
        xai_string_free(json);
        CHECK(v1 == v2 && v1[0] >= '0' && v1[0] <= '9' && strchr(v1, '.') != NULL, "version string \"%s\": static, digits and dots", v1);
    }
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
    {
        /* A model the engine cannot run (no image input) and an ONNX op it does not have. */
        const char *resize = path_of("resize/nearest_default.onnx");
        const char *model = path_of("models/small_resnet/model.onnx");
        xai_model *opened = NULL;
        char *info = NULL;
        expect_error(xai_model_open(resize, "cpu", &m), XAI_ERR_UNSUPPORTED, resize, "open a model without an image input");
        if (write_onnx_with_op("xai_c_test_lstm.onnx", "LSTM")) {
            expect_error(xai_model_open("xai_c_test_lstm.onnx", "cpu", &m), XAI_ERR_UNSUPPORTED, "LSTM", "open a model with an unknown op");
            CHECK(strstr(xai_last_error(), "my_op") && strstr(xai_last_error(), "xai_c_test_lstm.onnx"), "the unknown op's node and file named");
            expect_error(xai_model_open2("xai_c_test_lstm.onnx", "cpu", NULL, &m), XAI_ERR_UNSUPPORTED, "LSTM", "open2 a model with an unknown op");
            remove("xai_c_test_lstm.onnx");
        }
        /* A NULL device means "cpu"; NULL options mean the defaults. */
        CHECK(xai_model_open(model, NULL, &opened) == XAI_OK && opened, "open on the NULL device");
        CHECK(opened && xai_model_info_json(opened, &info) == XAI_OK && strstr(info, "\"device\":\"cpu") && strstr(info, "\"precision\":\"exact\""),
              "the NULL device is the CPU: %s", info ? info : "");
        xai_string_free(info);
        info = NULL;
        xai_model_free(opened);
        opened = NULL;
        CHECK(xai_model_open2(model, NULL, NULL, &opened) == XAI_OK && opened, "open2 with NULL device and options");
        CHECK(opened && xai_model_info_json(opened, &info) == XAI_OK && strstr(info, "\"device\":\"cpu") && strstr(info, "\"precision\":\"exact\""),
              "open2 defaults: cpu, exact: %s", info ? info : "");
        xai_string_free(info);
        xai_model_free(opened);
        /* xai_model_open2's own errors. */
        expect_error(xai_model_open2(NULL, "cpu", NULL, &m), XAI_ERR_INVALID_ARGUMENT, "path_or_zoo", "open2 NULL path");
        expect_error(xai_model_open2(model, "cpu", NULL, NULL), XAI_ERR_INVALID_ARGUMENT, "out_model", "open2 into NULL");
        expect_error(xai_model_open2("/nonexistent/model2.onnx", "cpu", NULL, &m), XAI_ERR_FILE, "/nonexistent/model2.onnx", "open2 missing file");
        expect_error(xai_model_open2(model, "tpu", NULL, &m), XAI_ERR_INVALID_ARGUMENT, "tpu", "open2 on a bad device");
        expect_error(xai_model_open2(model, "gpu:99", NULL, &m), XAI_ERR_DEVICE, "99", "open2 on a missing GPU");
        expect_error(xai_model_open2(model, "cpu", "{\"precision\": ", &m), XAI_ERR_INVALID_ARGUMENT, "options_json", "open2 options not JSON");
        expect_error(xai_model_open2(model, "cpu", "[\"fast\"]", &m), XAI_ERR_INVALID_ARGUMENT, "options_json", "open2 options not an object");
        expect_error(xai_model_open2(model, "cpu", "{\"precision\": 1}", &m), XAI_ERR_INVALID_ARGUMENT, "precision", "open2 mistyped precision");
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
    {
        static const char *const info_keys[] = {"\"name\"", "\"device\"", "\"inputShape\"", "\"classes\"", "\"labels\"", "\"camLayers\"",
                                                "\"defaultCamLayer\"", "\"flopsPerImage\"", "\"preprocessing\"", "\"mean\"", "\"std\"",
                                                "\"resize\"", "\"precision\"", "\"provenance\"", "\"engine\"", "\"algorithms\"", "\"host\"", NULL};
        char *untouched = (char *)0x1;
        json = NULL;
        CHECK(xai_model_info_json(m, &json) == XAI_OK && has_all(json, info_keys), "model info fields: %s", json ? json : "");
        xai_string_free(json);
        json = NULL;
        expect_error(xai_model_info_json(m, NULL), XAI_ERR_INVALID_ARGUMENT, "out_json", "info into NULL");
        expect_error(xai_model_info_json(NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "model", "info of NULL, again");
        CHECK(untouched == (char *)0x1, "info's out-parameter untouched on failure");
    }

    CHECK(xai_predict(m, input, shape, 4, logits, 20) == XAI_OK, "predict");
    for (i = 0; i < 20; i++) {
        double d = fabs(logits[i] - logits_ref[i]) / (1 + fabs(logits_ref[i]));
        if (d > worst) worst = d;
    }
    CHECK(worst < 1e-4, "logits against onnxruntime's: worst relative error %g", worst);
    expect_error(xai_predict(m, NULL, shape, 4, logits, 20), XAI_ERR_INVALID_ARGUMENT, "input", "predict NULL input");
    expect_error(xai_predict(m, input, NULL, 4, logits, 20), XAI_ERR_INVALID_ARGUMENT, "shape", "predict NULL shape");
    expect_error(xai_predict(m, input, shape, 3, logits, 20), XAI_ERR_INVALID_ARGUMENT, "rank", "predict rank 3");
    expect_error(xai_predict(m, input, wrong_shape, 4, logits, 20), XAI_ERR_INVALID_ARGUMENT, "3, 64, 64] (the model's input)", "predict wrong width");
    expect_error(xai_predict(m, input, negative, 4, logits, 20), XAI_ERR_INVALID_ARGUMENT, "input", "predict negative batch");
    expect_error(xai_predict(m, input, huge, 4, logits, 20), XAI_ERR_OUT_OF_MEMORY, "input", "predict huge batch");
    expect_error(xai_predict(m, input, shape, 4, bad, 8), XAI_ERR_INVALID_ARGUMENT, "logits_len", "predict short logits");
    {
        /* Arrays must be aligned for their type (xai.h): a float or int64_t array one byte off is
         * refused, naming it, never read. */
        static int64_t spare[9];
        static float spare_logits[21];
        int64_t *shape_off = (int64_t *)(void *)((char *)spare + 1);
        float *logits_off = (float *)(void *)((char *)spare_logits + 1);
        const float *input_off = (const float *)(const void *)((const char *)input + 1);
        memcpy(shape_off, shape, 4 * sizeof(int64_t));
        expect_error(xai_predict(m, input_off, shape, 4, logits, 20), XAI_ERR_INVALID_ARGUMENT, "aligned", "predict misaligned input");
        expect_error(xai_predict(m, input_off, shape, 4, logits, 20), XAI_ERR_INVALID_ARGUMENT, "input", "predict misaligned input, named");
        expect_error(xai_predict(m, input, shape_off, 4, logits, 20), XAI_ERR_INVALID_ARGUMENT, "shape", "predict misaligned shape");
        expect_error(xai_predict(m, input, shape, 4, logits_off, 20), XAI_ERR_INVALID_ARGUMENT, "logits", "predict misaligned logits");
    }
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
    {
        /* Zero images, four channels, a wrong height, rank 5, a long logits buffer, an infinity. */
        int64_t none[4] = {0, 3, 64, 64}, four[4] = {2, 4, 64, 64}, short_h[4] = {2, 3, 63, 64};
        size_t n = 2 * 3 * 64 * 64;
        float *inf_input = malloc(n * sizeof(float)), kept[21];
        expect_error(xai_predict(m, input, none, 4, logits, 0), XAI_ERR_INVALID_ARGUMENT, "input", "predict zero images");
        expect_error(xai_predict(m, input, four, 4, logits, 20), XAI_ERR_INVALID_ARGUMENT, "input", "predict four channels");
        expect_error(xai_predict(m, input, short_h, 4, logits, 20), XAI_ERR_INVALID_ARGUMENT, "3, 64, 64] (the model's input)", "predict wrong height");
        expect_error(xai_predict(m, input, shape, 5, logits, 20), XAI_ERR_INVALID_ARGUMENT, "rank", "predict rank 5");
        expect_error(xai_predict(m, input, shape, 0, logits, 20), XAI_ERR_INVALID_ARGUMENT, "rank", "predict rank 0");
        /* logits_len must be exactly N * classes: one more is refused, and the buffer is left alone. */
        for (i = 0; i < 21; i++) kept[i] = (float)(rand() % 1000 + 1);
        memcpy(bad, kept, sizeof bad);
        {
            float before[21];
            memcpy(before, kept, sizeof before);
            expect_error(xai_predict(m, input, shape, 4, kept, 21), XAI_ERR_INVALID_ARGUMENT, "logits_len", "predict long logits");
            CHECK(memcmp(before, kept, sizeof before) == 0, "a refused predict leaves the logits alone");
        }
        expect_error(xai_predict(m, input, shape, 4, bad, 8), XAI_ERR_INVALID_ARGUMENT, "logits_len", "predict short logits, again");
        CHECK(memcmp(bad, kept, sizeof bad) == 0, "a refused predict leaves the short buffer alone");
        memcpy(inf_input, input, n * sizeof(float));
        inf_input[(size_t)rand() % n] = -INFINITY;
        expect_error(xai_predict(m, inf_input, shape, 4, logits, 20), XAI_ERR_INVALID_ARGUMENT, "input", "predict infinite input");
        free(inf_input);
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
    {
        static int64_t spare_targets[3];
        int64_t *targets_off = (int64_t *)(void *)((char *)spare_targets + 4);
        xai_result *never = (xai_result *)0x1;
        memcpy(targets_off, targets, 2 * sizeof(int64_t));
        expect_error(xai_explain(m, "saliency", input, shape, 4, targets_off, 2, NULL, NULL, NULL, &never), XAI_ERR_INVALID_ARGUMENT,
                     "targets", "misaligned targets");
        CHECK(never == (xai_result *)0x1, "a misaligned call leaves the out-parameter alone");
    }
    expect_error(xai_result_tensor(r, "map", NULL, &dims, &rank), XAI_ERR_INVALID_ARGUMENT, "data", "NULL data out");
    expect_error(xai_result_tensor(NULL, "map", &data, &dims, &rank), XAI_ERR_INVALID_ARGUMENT, "result", "NULL result");
    expect_error(xai_result_tensor(r, "map", &data, NULL, &rank), XAI_ERR_INVALID_ARGUMENT, "shape", "NULL shape out");
    expect_error(xai_result_tensor(r, "map", &data, &dims, NULL), XAI_ERR_INVALID_ARGUMENT, "rank", "NULL rank out");
    {
        const float *kept_data = (const float *)0x1;
        const int64_t *kept_dims = (const int64_t *)0x1;
        size_t kept_rank = 77;
        char *kept_json = (char *)0x1;
        expect_error(xai_result_tensor(r, "nonsense", &kept_data, &kept_dims, &kept_rank), XAI_ERR_INVALID_ARGUMENT, "nonsense", "unknown tensor, again");
        expect_error(xai_result_tensor(NULL, "map", &kept_data, &kept_dims, &kept_rank), XAI_ERR_INVALID_ARGUMENT, "result", "NULL result, again");
        CHECK(kept_data == (const float *)0x1 && kept_dims == (const int64_t *)0x1 && kept_rank == 77, "failed tensor look-ups leave the out-parameters alone");
        expect_error(xai_result_meta_json(NULL, &kept_json), XAI_ERR_INVALID_ARGUMENT, "result", "meta of NULL");
        CHECK(kept_json == (char *)0x1, "a failed meta leaves its out-parameter alone");
    }
    {
        static const char *const meta_keys[] = {"\"method\":\"gradcam\"", "\"device\"", "\"targets\"", "\"scores\"", "\"diagnostics\"",
                                                "\"parameters\"", "\"seconds\"", "\"provenance\"", NULL};
        CHECK(xai_result_meta_json(r, &json) == XAI_OK && has_all(json, meta_keys), "explanation meta fields: %s", json ? json : "");
        xai_string_free(json);
        json = NULL;
    }
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
    CHECK(rank == 3 && dims[0] == 2 && dims[1] == 64 && dims[2] == 64, "lime segments [2, 64, 64]");
    CHECK(xai_result_tensor(r, "map", &data, &dims, &rank) == XAI_OK && rank == 3 && dims[0] == 2 && dims[1] == 64 && dims[2] == 64,
          "lime map [2, 64, 64]");
    xai_result_free(r);

    {
        /* The progress contract: (0, 1) first, (1, 1) last, on this thread, for a gradient method
         * and for a perturbation method's device batches. */
        progress_log log;
        start_log(&log);
        CHECK(xai_explain(m, "saliency", input, shape, 4, NULL, 0, NULL, record_progress, &log, &r) == XAI_OK && follows_contract(&log),
              "saliency progress: %d calls, first (%lld, %lld), last (%lld, %lld), %d bad", log.calls, (long long)log.first_done,
              (long long)log.first_total, (long long)log.last_done, (long long)log.last_total, log.bad);
        xai_result_free(r);
        start_log(&log);
        CHECK(xai_explain(m, "occlusion", input, shape, 4, NULL, 0, "{\"window\": 16, \"stride\": 16, \"batch\": 8}", record_progress, &log, &r) == XAI_OK
                  && follows_contract(&log) && log.calls >= 4,
              "occlusion progress: %d calls, first (%lld, %lld), last (%lld, %lld), %d bad", log.calls, (long long)log.first_done,
              (long long)log.first_total, (long long)log.last_done, (long long)log.last_total, log.bad);
        xai_result_free(r);
    }

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
    expect_error(xai_explain(m, "rise", input, shape, 4, NULL, 0, "{\"score\": \"odds\"}", NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "score", "bad score");
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
    {
        int64_t negative_target[1] = {-1}, wrong_shape[4] = {2, 3, 64, 32}, huge[4] = {INT64_MAX / 4, 3, 64, 64};
        expect_error(xai_explain(m, "gradcam", NULL, shape, 4, NULL, 0, NULL, NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "input", "NULL input");
        expect_error(xai_explain(m, "gradcam", input, NULL, 4, NULL, 0, NULL, NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "shape", "NULL shape");
        expect_error(xai_explain(m, "gradcam", input, wrong_shape, 4, NULL, 0, NULL, NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "input", "wrong width");
        expect_error(xai_explain(m, "gradcam", input, huge, 4, NULL, 0, NULL, NULL, NULL, &untouched), XAI_ERR_OUT_OF_MEMORY, "input", "huge batch");
        expect_error(xai_explain(m, "gradcam", input, shape, 4, negative_target, 1, NULL, NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "targets",
                     "negative target");
        expect_error(xai_explain(m, "ig", input, shape, 4, NULL, 0, "null", NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "configuration", "JSON null knobs");
        /* A method that does not apply: attention rollout on a CNN. */
        expect_error(xai_explain(m, "rollout", input, shape, 4, NULL, 0, NULL, NULL, NULL, &untouched), XAI_ERR_UNSUPPORTED, "rollout", "rollout on a CNN");
    }
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
    expect_error(xai_preprocess(NULL, paths, 1, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "model", "preprocess with a NULL model");
    expect_error(xai_preprocess(m, paths, 1, NULL, NULL), XAI_ERR_INVALID_ARGUMENT, "out_result", "preprocess into NULL");
    paths[1] = NULL;
    expect_error(xai_preprocess(m, paths, 2, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "paths[1]", "a NULL path in the list");
    /* The options: each preset form, and each wrong one named. */
    CHECK(xai_preprocess(m, paths, 1, "{\"preset\": \"imagenet\"}", &r) == XAI_OK, "preset imagenet");
    xai_result_free(r);
    CHECK(xai_preprocess(m, paths, 1, "{\"preset\": \"0.5,0.4,0.3/0.2,0.25,0.3\"}", &r) == XAI_OK, "preset r,g,b/r,g,b");
    CHECK(xai_result_meta_json(r, &json) == XAI_OK && strstr(json, "\"mean\":[0.5,0.4,0.3]"), "the preset's mean recorded: %s", json ? json : "");
    xai_string_free(json);
    json = NULL;
    xai_result_free(r);
    expect_error(xai_preprocess(m, paths, 1, "{\"preset\": \"cifar\"}", &untouched), XAI_ERR_INVALID_ARGUMENT, "preset", "unknown preset");
    expect_error(xai_preprocess(m, paths, 1, "{\"preset\": \"0.5,0.5/0.2,0.2,0.2\"}", &untouched), XAI_ERR_INVALID_ARGUMENT, "preset",
                 "a preset of two means");
    expect_error(xai_preprocess(m, paths, 1, "{\"preset\": 3}", &untouched), XAI_ERR_INVALID_ARGUMENT, "preset", "mistyped preset");
    expect_error(xai_preprocess(m, paths, 1, "{\"resize\": \"big\"}", &untouched), XAI_ERR_INVALID_ARGUMENT, "resize", "mistyped resize");
    expect_error(xai_preprocess(m, paths, 1, "{\"resize\": -80}", &untouched), XAI_ERR_INVALID_ARGUMENT, "resize", "negative resize");
    expect_error(xai_preprocess(m, paths, 1, "[\"none\"]", &untouched), XAI_ERR_INVALID_ARGUMENT, "options_json", "options not an object");
    expect_error(xai_preprocess(m, paths, 1, "{\"preset", &untouched), XAI_ERR_INVALID_ARGUMENT, "options_json", "options not JSON");
    /* Files that cannot be parsed: a PNG, a JPEG and a .npy of random bytes, an ONNX file, an .npy of the wrong shape. */
    if (write_garbage("xai_c_test_garbage.png", "\x89PNG\r\n\x1a\n", 8, 300)) {
        paths[0] = "xai_c_test_garbage.png";
        expect_error(xai_preprocess(m, paths, 1, NULL, &untouched), XAI_ERR_FILE, "xai_c_test_garbage.png", "a corrupt PNG");
        remove("xai_c_test_garbage.png");
    }
    if (write_garbage("xai_c_test_garbage.jpg", "\xff\xd8\xff", 3, 300)) {
        paths[0] = "xai_c_test_garbage.jpg";
        expect_error(xai_preprocess(m, paths, 1, NULL, &untouched), XAI_ERR_FILE, "xai_c_test_garbage.jpg", "a corrupt JPEG");
        remove("xai_c_test_garbage.jpg");
    }
    if (write_garbage("xai_c_test_garbage.npy", "\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'", 26, 64)) {
        paths[0] = "xai_c_test_garbage.npy";
        expect_error(xai_preprocess(m, paths, 1, NULL, &untouched), XAI_ERR_FILE, "xai_c_test_garbage.npy", "a corrupt .npy");
        remove("xai_c_test_garbage.npy");
    }
    paths[0] = path_of("models/small_resnet/model.onnx");
    expect_error(xai_preprocess(m, paths, 1, NULL, &untouched), XAI_ERR_FILE, paths[0], "a model as a picture");
    paths[0] = path_of("images/resized_23x31.npy");
    expect_error(xai_preprocess(m, paths, 1, NULL, &untouched), XAI_ERR_FILE, paths[0], "an .npy of the wrong shape");
    /* An .npy already preprocessed: its images as they are. */
    {
        int64_t npy_shape[4];
        size_t npy_rank = 0;
        float *expected = read_npy(path_of("models/small_resnet/input.npy"), npy_shape, &npy_rank);
        paths[0] = path_of("models/small_resnet/input.npy");
        CHECK(xai_preprocess(m, paths, 1, NULL, &r) == XAI_OK && xai_result_tensor(r, "input", &data, &dims, &rank) == XAI_OK && rank == 4
                  && dims[0] == npy_shape[0] && expected && memcmp(data, expected, (size_t)npy_shape[0] * 3 * 64 * 64 * sizeof(float)) == 0,
              "a preprocessed .npy passes through");
        CHECK(xai_result_meta_json(r, &json) == XAI_OK && strstr(json, "\"sources\"") && strstr(json, "\"stems\"") && strstr(json, "input.npy"),
              "its sources and stems: %s", json ? json : "");
        xai_string_free(json);
        xai_result_free(r);
        free(expected);
    }
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
    expect_error(xai_overlay(rgb, 4, 6, (const float *)(const void *)((const char *)map + 1), 2, 3, NULL, out), XAI_ERR_INVALID_ARGUMENT,
                 "map", "misaligned map");
    expect_error(xai_overlay(rgb, 0, 6, map, 2, 3, NULL, out), XAI_ERR_INVALID_ARGUMENT, "height", "height 0");
    expect_error(xai_overlay(rgb, 4, 6, map, -2, 3, NULL, out), XAI_ERR_INVALID_ARGUMENT, "map_height", "negative map height");
    expect_error(xai_overlay(NULL, 4, 6, map, 2, 3, NULL, out), XAI_ERR_INVALID_ARGUMENT, "rgb", "NULL picture");
    expect_error(xai_overlay(rgb, 4, 6, map, 2, 3, NULL, NULL), XAI_ERR_INVALID_ARGUMENT, "out", "NULL out");
    expect_error(xai_overlay(rgb, 4, 6, NULL, 2, 3, NULL, out), XAI_ERR_INVALID_ARGUMENT, "map", "NULL map");
    expect_error(xai_overlay(rgb, 4, -6, map, 2, 3, NULL, out), XAI_ERR_INVALID_ARGUMENT, "width", "negative width");
    expect_error(xai_overlay(rgb, 4, 6, map, 2, 0, NULL, out), XAI_ERR_INVALID_ARGUMENT, "map_width", "map width 0");
    expect_error(xai_overlay(rgb, 65537, 6, map, 2, 3, NULL, out), XAI_ERR_INVALID_ARGUMENT, "height", "height over 65536");
    expect_error(xai_overlay(rgb, INT64_MIN, 6, map, 2, 3, NULL, out), XAI_ERR_INVALID_ARGUMENT, "height", "height INT64_MIN");
    /* Over the memory limits: refused before anything is read. */
    expect_error(xai_overlay(rgb, 65536, 65536, map, 2, 3, NULL, out), XAI_ERR_OUT_OF_MEMORY, "overlay", "a picture too large");
    expect_error(xai_overlay(rgb, 4, 6, map, 65536, 65536, NULL, out), XAI_ERR_OUT_OF_MEMORY, "overlay", "a map too large");
    /* The style: not JSON, unknown or mistyped options and bad choices, each named. */
    expect_error(xai_overlay(rgb, 4, 6, map, 2, 3, "{\"colormap", out), XAI_ERR_INVALID_ARGUMENT, "style_json", "style not JSON");
    expect_error(xai_overlay(rgb, 4, 6, map, 2, 3, "[\"jet\"]", out), XAI_ERR_INVALID_ARGUMENT, "style_json", "style not an object");
    expect_error(xai_overlay(rgb, 4, 6, map, 2, 3, "{\"colour\": \"jet\"}", out), XAI_ERR_INVALID_ARGUMENT, "colour", "unknown style option");
    expect_error(xai_overlay(rgb, 4, 6, map, 2, 3, "{\"sign\": \"both\"}", out), XAI_ERR_INVALID_ARGUMENT, "sign", "bad sign");
    expect_error(xai_overlay(rgb, 4, 6, map, 2, 3, "{\"detail\": \"coarse\"}", out), XAI_ERR_INVALID_ARGUMENT, "detail", "bad detail");
    expect_error(xai_overlay(rgb, 4, 6, map, 2, 3, "{\"alpha\": -0.1}", out), XAI_ERR_INVALID_ARGUMENT, "alpha", "negative alpha");
    expect_error(xai_overlay(rgb, 4, 6, map, 2, 3, "{\"alpha\": \"half\"}", out), XAI_ERR_INVALID_ARGUMENT, "alpha", "mistyped alpha");
    expect_error(xai_overlay(rgb, 4, 6, map, 2, 3, "{\"colormap\": 3}", out), XAI_ERR_INVALID_ARGUMENT, "colormap", "mistyped colormap");
    expect_error(xai_overlay(rgb, 4, 6, map, 2, 3, "{\"percentile\": 101}", out), XAI_ERR_INVALID_ARGUMENT, "percentile", "percentile 101");
    expect_error(xai_overlay(rgb, 4, 6, map, 2, 3, "{\"percentile\": -1}", out), XAI_ERR_INVALID_ARGUMENT, "percentile", "percentile -1");
    {
        /* A refused overlay leaves `out` alone; every documented choice draws. */
        static const char *const styles[] = {"{\"colormap\": \"jet\"}", "{\"colormap\": \"viridis\"}", "{\"colormap\": \"inferno\"}",
                                             "{\"colormap\": \"turbo\"}", "{\"colormap\": \"diverging\"}", "{\"sign\": \"auto\"}",
                                             "{\"sign\": \"positive\"}", "{\"sign\": \"negative\"}", "{\"sign\": \"absolute\"}",
                                             "{\"sign\": \"all\"}", "{\"detail\": \"region\", \"percentile\": 50}",
                                             "{\"detail\": \"pixel\", \"alpha\": 1, \"percentile\": 0}", NULL};
        unsigned char kept[sizeof out];
        float signed_map[2 * 3];
        size_t k;
        fill_random(signed_map, 6);
        memset(out, 0xA5, sizeof out);
        memcpy(kept, out, sizeof out);
        expect_error(xai_overlay(rgb, 4, 6, signed_map, 2, 3, "{\"sign\": \"both\"}", out), XAI_ERR_INVALID_ARGUMENT, "sign", "bad sign, again");
        CHECK(memcmp(kept, out, sizeof out) == 0, "a refused overlay leaves out alone");
        for (k = 0; styles[k]; k++) CHECK(xai_overlay(rgb, 4, 6, signed_map, 2, 3, styles[k], out) == XAI_OK, "overlay with %s", styles[k]);
    }
}

/* Two threads, two handles, explaining at once: each must get what one thread alone gets. */
struct job {
    const float *input;
    const int64_t *shape;
    const float *expected;
    xai_model *shared; /* NULL: the thread opens its own handle */
    int ok;
};

static void *explain_repeatedly(void *arg) {
    struct job *j = arg;
    xai_model *m = j->shared;
    int round;
    j->ok = m != NULL || xai_model_open(path_of("models/small_resnet/model.onnx"), "cpu", &m) == XAI_OK;
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
    if (!j->shared) xai_model_free(m);
    return NULL;
}

/* A result read on another thread than the one that made it. */
struct reading {
    const xai_result *result;
    int ok;
};

static void *read_result(void *arg) {
    struct reading *rd = arg;
    const float *data = NULL;
    const int64_t *dims = NULL;
    size_t rank = 0;
    char *json = NULL;
    rd->ok = xai_result_tensor(rd->result, "map", &data, &dims, &rank) == XAI_OK && rank == 3 && dims[0] == 2 && data && isfinite(data[0])
             && xai_result_meta_json(rd->result, &json) == XAI_OK && strstr(json, "\"method\":\"ig\"");
    xai_string_free(json);
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
        jobs[t].shared = NULL;
        jobs[t].ok = 0;
        pthread_create(&threads[t], NULL, explain_repeatedly, &jobs[t]);
    }
    for (t = 0; t < 2; t++) pthread_join(threads[t], NULL);
    for (t = 0; t < 2; t++) CHECK(jobs[t].ok, "thread %d: same maps as one thread alone", t);
    /* Two threads on one handle: serialised, each still gets what one thread alone gets. */
    for (t = 0; t < 2; t++) {
        jobs[t].shared = m;
        jobs[t].ok = 0;
        pthread_create(&threads[t], NULL, explain_repeatedly, &jobs[t]);
    }
    for (t = 0; t < 2; t++) pthread_join(threads[t], NULL);
    for (t = 0; t < 2; t++) CHECK(jobs[t].ok, "thread %d on the shared handle: same maps as one thread alone", t);
    {
        struct reading rd;
        pthread_t reader;
        rd.result = r;
        rd.ok = 0;
        pthread_create(&reader, NULL, read_result, &rd);
        pthread_join(reader, NULL);
        CHECK(rd.ok, "a result read on another thread");
    }
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
    {
        xai_tensor_view off = itself;
        off.data = (const float *)(const void *)((const char *)zeros + 2);
        o.baseline = &off;
        expect_error(xai_explain2(m, "ig", &first, &o, &untouched), XAI_ERR_INVALID_ARGUMENT, "baseline.data", "misaligned baseline");
    }
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
    {
        /* A baseline [1, 3, H, W] is the same baseline as [3, H, W]; NULL parts, bad ranks and
         * non-finite values are refused by name. */
        static float random_baseline[3 * 64 * 64];
        int64_t one_image[4] = {1, 3, 64, 64};
        xai_tensor_view flat, batched, no_data, no_shape, rank0, rank9;
        fill_random(random_baseline, 3 * n);
        flat.data = random_baseline;
        flat.shape = image_shape;
        flat.rank = 3;
        batched = no_data = no_shape = rank0 = rank9 = flat;
        batched.shape = one_image;
        batched.rank = 4;
        no_data.data = NULL;
        no_shape.shape = NULL;
        rank0.rank = 0;
        rank9.rank = 9;
        o.knobs_json = "{\"steps\": 8}";
        o.baseline = &flat;
        CHECK(xai_explain2(m, "ig", &first, &o, &a) == XAI_OK, "ig from a random [3, H, W] baseline");
        o.baseline = &batched;
        CHECK(xai_explain2(m, "ig", &first, &o, &b) == XAI_OK, "ig from the same baseline as [1, 3, H, W]");
        CHECK(xai_result_tensor(a, "map", &ma, &dims, &rank) == XAI_OK && xai_result_tensor(b, "map", &mb, &dims, &rank) == XAI_OK
                  && memcmp(ma, mb, n * sizeof(float)) == 0, "[3, H, W] = [1, 3, H, W]");
        xai_result_free(a);
        xai_result_free(b);
        o.baseline = &no_data;
        expect_error(xai_explain2(m, "ig", &first, &o, &untouched), XAI_ERR_INVALID_ARGUMENT, "baseline.data", "baseline without data");
        o.baseline = &no_shape;
        expect_error(xai_explain2(m, "ig", &first, &o, &untouched), XAI_ERR_INVALID_ARGUMENT, "baseline.shape", "baseline without a shape");
        o.baseline = &rank0;
        expect_error(xai_explain2(m, "ig", &first, &o, &untouched), XAI_ERR_INVALID_ARGUMENT, "baseline.rank", "baseline of rank 0");
        o.baseline = &rank9;
        expect_error(xai_explain2(m, "ig", &first, &o, &untouched), XAI_ERR_INVALID_ARGUMENT, "baseline.rank", "baseline of rank 9");
        random_baseline[(size_t)rand() % (3 * n)] = NAN;
        o.baseline = &flat;
        expect_error(xai_explain2(m, "ig", &first, &o, &untouched), XAI_ERR_INVALID_ARGUMENT, "baseline", "a NaN in the baseline");
        o.baseline = NULL;
    }
    {
        /* explain2's own arguments, and the options that xai_explain takes as arguments. */
        int64_t three[3] = {1, 2, 3}, two_targets[2], out_of_range[1] = {10}, huge[4] = {INT64_MAX / 4, 3, 64, 64};
        xai_tensor_view no_data = batch, no_shape = batch, rank3 = batch, too_large = batch;
        xai_explain_options t;
        no_data.data = NULL;
        no_shape.shape = NULL;
        rank3.rank = 3;
        too_large.shape = huge;
        expect_error(xai_explain2(NULL, "gradcam", &batch, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "model", "explain2 NULL model");
        expect_error(xai_explain2(m, NULL, &batch, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "method", "explain2 NULL method");
        expect_error(xai_explain2(m, "nonsense", &batch, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "nonsense", "explain2 unknown method");
        expect_error(xai_explain2(m, "gradcam", NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "input", "explain2 NULL input");
        expect_error(xai_explain2(m, "gradcam", &no_data, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "input", "explain2 input without data");
        expect_error(xai_explain2(m, "gradcam", &no_shape, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "shape", "explain2 input without a shape");
        expect_error(xai_explain2(m, "gradcam", &rank3, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "rank", "explain2 input of rank 3");
        expect_error(xai_explain2(m, "gradcam", &too_large, NULL, &untouched), XAI_ERR_OUT_OF_MEMORY, "input", "explain2 huge batch");
        expect_error(xai_explain2(m, "gradcam", &batch, NULL, NULL), XAI_ERR_INVALID_ARGUMENT, "out_result", "explain2 into NULL");
        expect_error(xai_explain2(m, "rollout", &batch, NULL, &untouched), XAI_ERR_UNSUPPORTED, "rollout", "explain2 rollout on a CNN");
        memset(&t, 0, sizeof t);
        t.knobs_json = "{\"stepz\": 3}";
        expect_error(xai_explain2(m, "ig", &batch, &t, &untouched), XAI_ERR_INVALID_ARGUMENT, "stepz", "explain2 unknown knob");
        t.knobs_json = "{\"steps\": \"many\"}";
        expect_error(xai_explain2(m, "ig", &batch, &t, &untouched), XAI_ERR_INVALID_ARGUMENT, "steps", "explain2 mistyped knob");
        t.knobs_json = "{steps";
        expect_error(xai_explain2(m, "ig", &batch, &t, &untouched), XAI_ERR_INVALID_ARGUMENT, "configuration", "explain2 knobs not JSON");
        t.knobs_json = NULL;
        t.targets = three;
        t.n_targets = 3;
        expect_error(xai_explain2(m, "gradcam", &batch, &t, &untouched), XAI_ERR_INVALID_ARGUMENT, "n_targets", "explain2 three targets for two images");
        t.targets = NULL;
        t.n_targets = 1;
        expect_error(xai_explain2(m, "gradcam", &batch, &t, &untouched), XAI_ERR_INVALID_ARGUMENT, "targets", "explain2 NULL targets");
        t.targets = out_of_range;
        expect_error(xai_explain2(m, "gradcam", &batch, &t, &untouched), XAI_ERR_INVALID_ARGUMENT, "targets", "explain2 target out of range");
        two_targets[0] = rand() % 10;
        two_targets[1] = rand() % 10;
        t.targets = two_targets;
        t.n_targets = 2;
        {
            char want[64];
            snprintf(want, sizeof want, "\"targets\":[%d,%d]", (int)two_targets[0], (int)two_targets[1]);
            CHECK(xai_explain2(m, "gradcam", &batch, &t, &a) == XAI_OK && xai_result_meta_json(a, &json) == XAI_OK && strstr(json, want),
                  "explain2 per-image targets %s: %s", want, json ? json : "");
            xai_string_free(json);
            json = NULL;
            xai_result_free(a);
        }
        {
            progress_log log;
            memset(&t, 0, sizeof t);
            t.knobs_json = "{\"samples\": 16, \"segmentation\": \"grid\", \"segments\": 4}";
            t.progress = record_progress;
            t.user = &log;
            start_log(&log);
            CHECK(xai_explain2(m, "lime", &batch, &t, &a) == XAI_OK && follows_contract(&log),
                  "explain2 progress: %d calls, first (%lld, %lld), last (%lld, %lld), %d bad", log.calls, (long long)log.first_done,
                  (long long)log.first_total, (long long)log.last_done, (long long)log.last_total, log.bad);
            xai_result_free(a);
        }
    }

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
    {
        /* One mask per image [N, H, W]; masks of a wrong shape or without data are refused. */
        static float per_image[2 * 64 * 64];
        int64_t per_image_shape[3] = {2, 64, 64}, wrong_shape[3] = {3, 64, 64}, small[2] = {32, 32};
        xai_tensor_view masks = {per_image, per_image_shape, 3}, wrong = {per_image, wrong_shape, 3}, half = {quadrants, small, 2};
        xai_tensor_view no_data = {NULL, mask_shape, 2};
        for (i = 0; i < 2 * n; i++) per_image[i] = (float)(rand() % 5);
        o.knobs_json = "{\"samples\": 16}";
        o.feature_mask = &masks;
        CHECK(xai_explain2(m, "lime", &batch, &o, &a) == XAI_OK, "lime on one mask per image");
        CHECK(xai_result_tensor(a, "segments", &ma, &dims, &rank) == XAI_OK && rank == 3 && dims[0] == 2 && dims[1] == 64 && dims[2] == 64,
              "segments [2, 64, 64]");
        xai_result_free(a);
        o.feature_mask = &wrong;
        expect_error(xai_explain2(m, "lime", &batch, &o, &untouched), XAI_ERR_INVALID_ARGUMENT, "feature_mask", "a mask per image of the wrong count");
        o.feature_mask = &half;
        expect_error(xai_explain2(m, "lime", &batch, &o, &untouched), XAI_ERR_INVALID_ARGUMENT, "feature_mask", "a mask of the wrong size");
        o.feature_mask = &no_data;
        expect_error(xai_explain2(m, "lime", &batch, &o, &untouched), XAI_ERR_INVALID_ARGUMENT, "feature_mask.data", "a mask without data");
        o.feature_mask = NULL;
        o.knobs_json = NULL;
    }

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
    {
        static const char *const meta_keys[] = {"\"metrics\"", "\"name\"", "\"direction\"", "\"scores\"", "\"mean\"", "\"standardError\"",
                                                "\"count\"", "\"settings\"", "\"curves\"", "\"seconds\"", "\"targets\"", "\"method\":\"gradcam\"", NULL};
        CHECK(has_all(json, meta_keys), "evaluate meta fields: %s", json ? json : "");
    }
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
    eo.metric_knobs_json = NULL;
    {
        /* evaluate's own arguments, the metric knobs, and the method's options, each named. */
        int64_t three[3] = {1, 2, 3}, narrow[4] = {2, 3, 64, 32}, map_shape[3] = {2, 64, 64}, wrong_maps[3] = {2, 32, 32};
        static float given_maps[2 * 64 * 64];
        xai_tensor_view no_data = batch, wrong = batch, maps_wrong = {given_maps, wrong_maps, 3}, maps_no_data = {NULL, map_shape, 3};
        xai_evaluate_options go;
        no_data.data = NULL;
        wrong.shape = narrow;
        expect_error(xai_evaluate(NULL, "sparseness", &batch, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "model", "evaluate NULL model");
        expect_error(xai_evaluate(m, NULL, &batch, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "metrics", "evaluate NULL metrics");
        expect_error(xai_evaluate(m, "", &batch, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "metrics", "evaluate no metrics");
        expect_error(xai_evaluate(m, "sparseness", &batch, &eo, NULL), XAI_ERR_INVALID_ARGUMENT, "out_result", "evaluate into NULL");
        expect_error(xai_evaluate(m, "sparseness", &no_data, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "input", "evaluate input without data");
        expect_error(xai_evaluate(m, "sparseness", &wrong, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "input", "evaluate input of the wrong width");
        eo.metric_knobs_json = "{\"stepp\": 1}";
        expect_error(xai_evaluate(m, "deletion", &batch, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "stepp", "unknown metric knob");
        eo.metric_knobs_json = "{\"step\": \"x\"}";
        expect_error(xai_evaluate(m, "deletion", &batch, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "step", "mistyped metric knob");
        eo.metric_knobs_json = "{\"step\": 0}";
        expect_error(xai_evaluate(m, "deletion", &batch, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "step", "metric knob out of range");
        eo.metric_knobs_json = "{step";
        expect_error(xai_evaluate(m, "deletion", &batch, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "configuration", "metric knobs not JSON");
        eo.metric_knobs_json = NULL;
        eo.method = "nonsense";
        expect_error(xai_evaluate(m, "sparseness", &batch, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "nonsense", "evaluate unknown method");
        eo.method = "gradcam";
        eo.explain.knobs_json = "{\"stepz\": 2}";
        expect_error(xai_evaluate(m, "sparseness", &batch, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "stepz", "evaluate unknown method knob");
        eo.explain.knobs_json = NULL;
        eo.explain.targets = three;
        eo.explain.n_targets = 3;
        expect_error(xai_evaluate(m, "sparseness", &batch, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "n_targets", "evaluate three targets for two images");
        eo.explain.targets = NULL;
        eo.explain.n_targets = 0;
        eo.method = "rollout";
        expect_error(xai_evaluate(m, "sparseness", &batch, &eo, &untouched), XAI_ERR_UNSUPPORTED, "rollout", "evaluate rollout on a CNN");
        eo.method = "gradcam";
        memset(&go, 0, sizeof go);
        go.maps = &maps_wrong;
        expect_error(xai_evaluate(m, "sparseness", &batch, &go, &untouched), XAI_ERR_INVALID_ARGUMENT, "maps", "maps of the wrong size");
        go.maps = &maps_no_data;
        expect_error(xai_evaluate(m, "sparseness", &batch, &go, &untouched), XAI_ERR_INVALID_ARGUMENT, "maps.data", "maps without data");
    }
    {
        /* Masks: the mask metrics score; "all" is every metric, the mask metrics only with masks;
         * NaN (null in the metadata) where a score is undefined (an empty mask). */
        static float truth[2 * 64 * 64];
        int64_t truth_shape[3] = {2, 64, 64}, wrong_shape[3] = {2, 32, 32};
        xai_tensor_view masks = {truth, truth_shape, 3}, wrong = {truth, wrong_shape, 3}, no_data = {NULL, truth_shape, 3};
        /* Every documented key, null where undefined (here one image is scored: no standard error,
         * and the pointing game has no curves). */
        static const char *const meta_keys[] = {"\"metrics\"", "\"name\":\"pointing_game\"", "\"direction\"", "\"scores\"", "\"mean\"",
                                                "\"standardError\":null", "\"curves\":null", "\"count\"", "\"settings\"",
                                                "\"seconds\"", "\"targets\"", "\"method\":\"gradcam\"", NULL};
        const char *p;
        int with_masks = 0, without_masks = 0;
        progress_log log;
        CHECK(xai_metrics_json(&json) == XAI_OK, "metrics json, to count");
        for (p = json; p && (p = strstr(p, "\"needsMasks\":")) != NULL; p += 13) {
            if (p[13] == 't') with_masks++;
            else without_masks++;
        }
        xai_string_free(json);
        json = NULL;
        for (i = 0; i < n; i++) truth[i] = (float)(rand() % 3 == 0); /* image 0: a random mask */
        for (i = n; i < 2 * n; i++) truth[i] = 0;                     /* image 1: empty */
        truth[rand() % (int)n] = 1;
        eo.masks = &masks;
        CHECK(xai_evaluate(m, "pointing_game,relevance_mass", &batch, &eo, &e) == XAI_OK, "mask metrics");
        CHECK(xai_result_tensor(e, "scores", &scores, &dims, &rank) == XAI_OK && rank == 2 && dims[0] == 2 && dims[1] == 2 && isfinite(scores[0])
                  && isnan(scores[1]) && isfinite(scores[2]) && isnan(scores[3]),
              "scores [2, 2], NaN for the empty mask");
        CHECK(xai_result_meta_json(e, &json) == XAI_OK && has_all(json, meta_keys) && strstr(json, ",null]"), "mask metrics meta: %s", json ? json : "");
        xai_string_free(json);
        json = NULL;
        xai_result_free(e);
        eo.metric_knobs_json = "{\"step\": 1024}";
        CHECK(xai_evaluate(m, "all", &batch, &eo, &e) == XAI_OK && xai_result_tensor(e, "scores", &scores, &dims, &rank) == XAI_OK && rank == 2
                  && dims[0] == with_masks + without_masks && dims[1] == 2,
              "all with masks: %d metrics", with_masks + without_masks);
        xai_result_free(e);
        eo.masks = NULL;
        CHECK(xai_evaluate(m, "all", &batch, &eo, &e) == XAI_OK && xai_result_tensor(e, "scores", &scores, &dims, &rank) == XAI_OK && rank == 2
                  && dims[0] == without_masks && dims[1] == 2,
              "all without masks: %d metrics", without_masks);
        xai_result_free(e);
        eo.metric_knobs_json = NULL;
        eo.masks = &wrong;
        expect_error(xai_evaluate(m, "pointing_game", &batch, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "masks", "masks of the wrong size");
        eo.masks = &no_data;
        expect_error(xai_evaluate(m, "pointing_game", &batch, &eo, &untouched), XAI_ERR_INVALID_ARGUMENT, "masks.data", "masks without data");
        eo.masks = NULL;
        /* Progress through evaluate, the method named: (0, 1) first, (1, 1) last. */
        start_log(&log);
        eo.explain.progress = record_progress;
        eo.explain.user = &log;
        CHECK(xai_evaluate(m, "sparseness,deletion", &batch, &eo, &e) == XAI_OK && follows_contract(&log),
              "evaluate progress: %d calls, first (%lld, %lld), last (%lld, %lld), %d bad", log.calls, (long long)log.first_done,
              (long long)log.first_total, (long long)log.last_done, (long long)log.last_total, log.bad);
        eo.explain.progress = NULL;
        eo.explain.user = NULL;
        {
            /* The maps given, so no method runs: the metrics alone follow the contract. */
            const float *given_data = NULL;
            const int64_t *given_shape = NULL;
            size_t given_rank = 0;
            xai_evaluate_options given_options;
            xai_tensor_view given;
            xai_result *g = NULL;
            CHECK(xai_result_tensor(e, "map", &given_data, &given_shape, &given_rank) == XAI_OK, "the evaluation's maps");
            given.data = given_data;
            given.shape = given_shape;
            given.rank = given_rank;
            memset(&given_options, 0, sizeof given_options);
            given_options.maps = &given;
            given_options.explain.progress = record_progress;
            given_options.explain.user = &log;
            start_log(&log);
            CHECK(xai_evaluate(m, "sparseness,complexity", &batch, &given_options, &g) == XAI_OK && follows_contract(&log),
                  "evaluate progress, maps given: %d calls, first (%lld, %lld), last (%lld, %lld), %d bad", log.calls,
                  (long long)log.first_done, (long long)log.first_total, (long long)log.last_done, (long long)log.last_total, log.bad);
            xai_result_free(g);
        }
        xai_result_free(e);
    }
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

/* A file's lines ("\n"-terminated), or -1 where it cannot be read. */
static int count_lines(const char *path) {
    FILE *f = fopen(path, "rb");
    int c, n = 0;
    if (!f) return -1;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

static int exists(const char *folder, const char *relative) {
    char path[2048];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", folder, relative);
    f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* Cancels once `done` reaches the value `user` points to. */
static int cancel_at(int64_t done, int64_t total, void *user) {
    (void)total;
    return done >= *(int64_t *)user;
}

static void test_explain_files(xai_model *m) {
    char folder[] = "/tmp/xai_c_test_filesXXXXXX", request[4096], results[2200];
    char *summary = (char *)0x1, *json = NULL, *untouched = (char *)0x1;
    const char *inputs[2];
    progress_log log;
    int64_t stop = 1;
    if (!mkdtemp(folder)) {
        CHECK(0, "mkdtemp");
        return;
    }
    snprintf(results, sizeof results, "%s/results.jsonl", folder);
    /* Two pictures and a corrupt one, named by the caller: the corrupt one fails alone. */
    if (!write_garbage("xai_c_test_corrupt.png", "\x89PNG\r\n\x1a\n", 8, 300)) return;
    snprintf(request, sizeof request,
             "{\"out\": \"%s\", \"files\": [\"%s\", \"%s\", \"xai_c_test_corrupt.png\"], \"stems\": [\"first\", \"second\", \"third\"],"
             " \"methods\": [\"gradcam\", \"saliency\"], \"save\": \"raw,png\", \"knobs\": {\"seed\": 3}}",
             folder, path_of("images/photo.jpg"), path_of("images/rgb8.png"));
    start_log(&log);
    summary = NULL;
    CHECK(xai_explain_files(m, request, record_progress, &log, &summary) == XAI_OK, "explain files");
    CHECK(summary && strstr(summary, "\"written\":4") && strstr(summary, "\"skipped\":0") && strstr(summary, "xai_c_test_corrupt.png")
              && strstr(summary, "\"report\":null") && strstr(summary, "\"warnings\":["),
          "4 maps written, the corrupt file listed as a failure, warnings listed, no report without html: %s", summary ? summary : "");
    CHECK(log.calls >= 2 && log.bad == 0 && log.first_done == 0 && log.first_total == 1 && log.last_done == 3 && log.last_total == 3,
          "progress (0, 1) first, (files done, files) after: %d calls, last %lld/%lld", log.calls, (long long)log.last_done, (long long)log.last_total);
    xai_string_free(summary);
    CHECK(exists(folder, "first/gradcam.npy") && exists(folder, "second/saliency.npy") && exists(folder, "first/gradcam.png")
              && exists(folder, "first/input.png") && !exists(folder, "third/gradcam.npy") && !exists(folder, "index.html"),
          "maps and overlays in the named folders");
    CHECK(count_lines(results) == 4, "one result line per map: %d", count_lines(results));
    /* Again: everything is there, nothing is written twice. */
    summary = NULL;
    CHECK(xai_explain_files(m, request, NULL, NULL, &summary) == XAI_OK && summary && strstr(summary, "\"written\":0")
              && strstr(summary, "\"skipped\":4"), "a second run skips: %s", summary ? summary : "");
    xai_string_free(summary);
    CHECK(count_lines(results) == 4, "no second line: %d", count_lines(results));
    CHECK(xai_write_report(folder, &json) == XAI_OK && json && strstr(json, "index.html") && exists(folder, "index.html"), "the report");
    xai_string_free(json);
    json = NULL;
    /* Scored as `xai evaluate` does: the maps written above are reused, one line per image x method x metric. */
    snprintf(request, sizeof request,
             "{\"out\": \"%s\", \"files\": [\"%s\", \"%s\"], \"stems\": [\"first\", \"second\"], \"methods\": \"gradcam\","
             " \"metrics\": [\"deletion\", \"sparseness\"], \"metricKnobs\": {\"step\": 512}, \"report\": false}",
             folder, path_of("images/photo.jpg"), path_of("images/rgb8.png"));
    start_log(&log);
    summary = NULL;
    CHECK(xai_evaluate_files(m, request, record_progress, &log, &summary) == XAI_OK && summary && strstr(summary, "\"metric\":\"deletion\"")
              && strstr(summary, "\"metric\":\"sparseness\"") && strstr(summary, "\"failures\":[]") && strstr(summary, "\"report\":null"),
          "evaluate files: %s", summary ? summary : "");
    CHECK(log.first_done == 0 && log.first_total == 1 && log.last_done == 2 && log.last_total == 2 && log.bad == 0, "evaluate progress");
    xai_string_free(summary);
    {
        char metrics[2200];
        snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", folder);
        CHECK(count_lines(metrics) == 4, "2 images x 2 metrics: %d lines", count_lines(metrics));
    }
    expect_error(xai_evaluate_files(m, "{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"metrics\": \"nosuchmetric\"}", NULL, NULL, &untouched),
                 XAI_ERR_INVALID_ARGUMENT, "nosuchmetric", "evaluate an unknown metric");
    expect_error(xai_evaluate_files(m, "{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"metricKnobs\": {\"stepp\": 1}}", NULL, NULL, &untouched),
                 XAI_ERR_INVALID_ARGUMENT, "stepp", "evaluate an unknown metric knob");
    expect_error(xai_evaluate_files(m, "{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"save\": \"raw\"}", NULL, NULL, &untouched),
                 XAI_ERR_INVALID_ARGUMENT, "save", "evaluate takes no save");
    expect_error(xai_evaluate_files(m, "{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"masks\": \"/nonexistent-masks\"}", NULL, NULL,
                              &untouched), XAI_ERR_FILE, "/nonexistent-masks", "evaluate with a missing mask folder");
        /* Cancelled after the first group of one file: that file's outputs are written, the rest are not. */
    snprintf(request, sizeof request,
             "{\"out\": \"%s\", \"files\": [\"%s\", \"%s\"], \"stems\": [\"c1\", \"c2\"], \"methods\": \"saliency\", \"save\": [\"raw\"],"
             " \"imageBatch\": 1, \"results\": \"%s/cancelled.jsonl\"}", folder, path_of("images/photo.jpg"), path_of("images/rgb8.png"), folder);
    expect_error(xai_explain_files(m, request, cancel_at, &stop, &untouched), XAI_ERR_CANCELLED, "cancelled", "cancelled after one file");
    CHECK(exists(folder, "c1/saliency.npy") && !exists(folder, "c2/saliency.npy") && exists(folder, "cancelled.jsonl"), "the first file's map only");
    /* Inputs listed as xai explain lists them, with a shard. */
    inputs[0] = path_of("images");
    CHECK(xai_list_inputs(inputs, 1, NULL, &json) == XAI_OK && json && strstr(json, "gray8.png") && strstr(json, "\"stems\"")
              && strstr(json, "\"photo\""), "list a folder: %s", json ? json : "");
    xai_string_free(json);
    json = NULL;
    CHECK(xai_list_inputs(inputs, 1, "0/1000", &json) == XAI_OK && json && strstr(json, "gray8.png") && !strstr(json, "photo"),
          "shard 0 of 1000 keeps the first file only: %s", json ? json : "");
    xai_string_free(json);
    expect_error(xai_list_inputs(inputs, 1, "3/2", &untouched), XAI_ERR_INVALID_ARGUMENT, "shard", "shard out of range");
    expect_error(xai_list_inputs(inputs, 0, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "n_inputs", "no inputs");
    expect_error(xai_list_inputs(NULL, 1, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "inputs", "NULL inputs");
    expect_error(xai_list_inputs(inputs, 1, NULL, NULL), XAI_ERR_INVALID_ARGUMENT, "out_json", "list into NULL");
    inputs[1] = "/nonexistent-folder";
    expect_error(xai_list_inputs(inputs, 2, NULL, &untouched), XAI_ERR_FILE, "/nonexistent-folder", "a missing input");
    expect_error(xai_write_report("/nonexistent-folder", &untouched), XAI_ERR_FILE, "/nonexistent-folder", "report of a missing folder");
    expect_error(xai_write_report(NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "folder", "report of NULL");
    /* Every wrong request is named. */
    {
        static const char *const bad[][2] = {
            {"{\"files\": [\"a.png\"]}", "out"},
            {"{\"out\": \"/tmp/x\"}", "files"},
            {"{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"inputs\": [\"b\"]}", "inputs"},
            {"{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"stems\": [\"a\", \"b\"]}", "stems"},
            {"{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"stems\": [\"../up\"]}", "stems"},
            {"{\"out\": \"/tmp/x\", \"files\": [\"a.png\", \"b.png\"], \"stems\": [\"s\", \"s\"]}", "stems"},
            {"{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"shard\": \"0/2\"}", "shard"},
            {"{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"save\": [\"pdf\"]}", "save"},
            {"{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"imageBatch\": 0}", "imageBatch"},
            {"{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"imageBatch\": 2.5}", "imageBatch"},
            {"{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"target\": 100000}", "target"},
            {"{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"overwrite\": 1}", "overwrite"},
            {"{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"knobs\": {\"stepz\": 3}}", "stepz"},
            {"{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"methods\": \"gradcam,nosuch\"}", "nosuch"},
            {"{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"style\": {\"colormap\": \"rainbow\"}}", "colormap"},
            {"{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"style\": {\"detail\": \"pixel\"}}", "detail"},
            {"{\"out\": \"/tmp/x\", \"files\": [\"a.png\"], \"outt\": 1}", "outt"},
            {"[\"out\"]", "request_json"},
            {"{\"out\": ", "request_json"},
        };
        size_t i;
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            char what[256];
            snprintf(what, sizeof what, "explain_files %s", bad[i][0]);
            expect_error(xai_explain_files(m, bad[i][0], NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, bad[i][1], what);
        }
    }
    expect_error(xai_explain_files(NULL, "{}", NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "model", "explain_files, NULL model");
    expect_error(xai_explain_files(m, NULL, NULL, NULL, &untouched), XAI_ERR_INVALID_ARGUMENT, "request_json", "explain_files, NULL request");
    expect_error(xai_explain_files(m, "{\"out\": \"/tmp/x\", \"files\": [\"a.png\"]}", NULL, NULL, NULL), XAI_ERR_INVALID_ARGUMENT,
                 "out_summary_json", "explain_files into NULL");
    CHECK(untouched == (char *)0x1, "out-parameter untouched after every failure");
    remove("xai_c_test_corrupt.png");
    {
        char command[2200];
        snprintf(command, sizeof command, "rm -rf '%s'", folder);
        CHECK(system(command) == 0, "remove %s", folder);
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
        test_explain_files(m);
    }
    test_overlay();
    xai_model_free(m);
    free(input);
    free(logits);
    printf("C interface: %d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
