/*
 * xai.h: the C interface of the xai engine (libxaic.so), for programs and languages that are not
 * Swift. C99; no Swift types cross it.
 *
 * Conventions
 * - Opaque handles with create/free pairs. Every *_free function accepts NULL.
 * - Every fallible call returns an xai_status. On failure, xai_last_error() gives the message and
 *   the call's out-parameters are left untouched; nothing leaks.
 * - Ownership: inputs (arrays, strings) are borrowed for the duration of the call only. Tensors
 *   returned by xai_result_tensor live until the result is freed. Strings returned through a
 *   char ** out-parameter are the caller's and are freed with xai_string_free.
 * - Strings are UTF-8. Dimensions are int64_t, counts and sizes size_t, tensors float32 in C order
 *   (images NCHW). Arrays must be aligned for their element type (4 bytes for float, 8 for
 *   int64_t, as malloc and C arrays are); a misaligned one is XAI_ERR_INVALID_ARGUMENT, naming it,
 *   and is not read.
 * - Knobs travel as a JSON object named exactly as the registry names them (xai_methods_json lists
 *   them: "steps", "rule", "samples", "seed", ...); an unknown or mistyped knob is an error that
 *   names it.
 * - Threads: separate model handles may be used from separate threads at the same time. One handle
 *   is used by one thread at a time (calls on one handle from several threads are serialised, not
 *   run in parallel). A result may be read from any thread.
 */
#ifndef XAI_H
#define XAI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header's interface. Functions are only ever added, never changed or removed;
 * check xai_api_version() >= XAI_API_VERSION at load time. */
#define XAI_API_VERSION 3

typedef struct xai_model xai_model;   /* a loaded model on a device */
typedef struct xai_result xai_result; /* named tensors plus metadata JSON */

typedef enum {
    XAI_OK = 0,
    XAI_ERR_INVALID_ARGUMENT = 1, /* a NULL pointer, a wrong shape, a bad knob or JSON */
    XAI_ERR_FILE = 2,             /* a file that cannot be read or parsed (model, image, .npy) */
    XAI_ERR_UNSUPPORTED = 3,      /* an ONNX op or model the engine cannot run; a method that does not apply */
    XAI_ERR_DEVICE = 4,           /* the device cannot be used (no OpenCL GPU, a driver error) */
    XAI_ERR_OUT_OF_MEMORY = 5,    /* a tensor or batch over the memory limits */
    XAI_ERR_CANCELLED = 6,        /* the progress callback returned non-zero */
    XAI_ERR_INTERNAL = 7          /* a bug: please report it with the message */
} xai_status;

/* Progress of long work: called with (0, 1) before the work starts, with (copies done, copies in
 * all) after each device batch of a perturbation method (counted per image), and with (1, 1) when
 * the work is done. A non-zero return cancels the call, which then returns XAI_ERR_CANCELLED.
 * Called on the thread that made the call. */
typedef int (*xai_progress_fn)(int64_t done, int64_t total, void *user);

/* The library's interface version (XAI_API_VERSION of the header it was built with). */
uint32_t xai_api_version(void);
/* The library's version, e.g. "0.20.0". Static storage: do not free. */
const char *xai_version_string(void);
/* The message of the last failed call on this thread ("" when none). Valid until the next xai_
 * call on this thread; do not free. */
const char *xai_last_error(void);
/* Frees a string the library returned. NULL is a no-op. */
void xai_string_free(char *s);

/* Devices as JSON: {"devices": [{"device": "cpu", ...}, {"device": "gpu:0", "name": ..., "isGPU": ...}]}. */
xai_status xai_devices_json(char **out_json);
/* Methods and knobs as JSON: {"methods": [{"name", "summary", "knobs": [{"name", "type", "default",
 * "minimum", "maximum", "choices", "summary"}]}], "knobs": [...]}. */
xai_status xai_methods_json(char **out_json);

/* Opens an ONNX file or a zoo model name (e.g. "resnet50") on a device: "cpu", "gpu" or "gpu:N"
 * (NULL means "cpu"). A model.json beside model.onnx gives preprocessing and labels. */
xai_status xai_model_open(const char *path_or_zoo, const char *device, xai_model **out_model);
void xai_model_free(xai_model *model);
/* The model as JSON: name, device, inputShape [1,3,H,W], classes, labels (or null), camLayers,
 * defaultCamLayer, flopsPerImage, preprocessing {mean, std, resize}, precision, provenance {engine,
 * device, precision, algorithms, host} (also in every explanation's and evaluation's metadata). */
xai_status xai_model_info_json(xai_model *model, char **out_json);

/* Logits of a batch: `input` holds shape[0]*...*shape[rank-1] floats, shape is [N, 3, H, W] at the
 * model's input size; `logits` receives N * classes floats (logits_len must be exactly that). */
xai_status xai_predict(xai_model *model, const float *input, const int64_t *shape, size_t rank,
                       float *logits, size_t logits_len);

/* Explains a batch [N, 3, H, W] with a method (xai_methods_json lists them).
 * targets: NULL / 0 for each image's top-1 class; 1 class for every image; or N classes, one per
 * image. knobs_json: NULL or a JSON object of knobs. progress: NULL or a callback (see above).
 * The result holds the tensors "map" [N, H, W], "raw" (the method's own tensor, where it has one)
 * and "segments" [N, H, W] (superpixel methods), and metadata JSON. */
xai_status xai_explain(xai_model *model, const char *method, const float *input, const int64_t *shape,
                       size_t rank, const int64_t *targets, size_t n_targets, const char *knobs_json,
                       xai_progress_fn progress, void *user, xai_result **out_result);

/* Version 2 ------------------------------------------------------------------------------------ */

/* A tensor passed into a call: shape[0] * ... * shape[rank - 1] floats in C order. Borrowed for
 * the call only. */
typedef struct {
    const float *data;
    const int64_t *shape;
    size_t rank;
} xai_tensor_view;

/* What xai_explain2 takes besides the model, the method and the batch. Zero it
 * (`xai_explain_options o = {0};`) and set what you need: every field may stay NULL / 0. */
typedef struct {
    const int64_t *targets;     /* as xai_explain: NULL / 0 for top-1, 1 class for all, or N */
    size_t n_targets;
    const char *knobs_json;     /* a JSON object of knobs, or NULL */
    /* A baseline tensor [3, H, W] or [1, 3, H, W] (after preprocessing), used instead of the
     * "baseline" knob; NULL keeps the knob. GradientSHAP also takes [K, 3, H, W]: K baselines it
     * draws from. */
    const xai_tensor_view *baseline;
    /* Superpixels for LIME and KernelSHAP: integer segment ids as floats, [H, W] (every image) or
     * [N, H, W] (one per image), used instead of the "segmentation" knobs; NULL keeps them. */
    const xai_tensor_view *feature_mask;
    xai_progress_fn progress;   /* NULL or a callback, as xai_explain */
    void *user;
} xai_explain_options;

/* xai_explain with tensors: the baseline and superpixels come as arrays, not as files named in
 * the knobs. options may be NULL (top-1, default knobs). The result is as xai_explain's. */
xai_status xai_explain2(xai_model *model, const char *method, const xai_tensor_view *input,
                        const xai_explain_options *options, xai_result **out_result);

/* What xai_evaluate takes besides the model, the metrics and the images. Zero it and set what you
 * need. */
typedef struct {
    /* The method that made the maps: the metrics that re-explain (completeness, sensitivity_*,
     * local_lipschitz, relative_*_stability, random_logit*, *mprt, input_invariance) run
     * it again with the same knobs. With maps NULL it also makes the maps. */
    const char *method;
    const xai_tensor_view *maps;   /* [N, H, W], or NULL to explain the images with `method` now */
    const xai_tensor_view *masks;  /* ground truth [N, H, W], non-zero inside: the localisation metrics */
    const char *metric_knobs_json; /* a JSON object of metric knobs (xai_metrics_json), or NULL */
    xai_explain_options explain;   /* the method's targets, knobs, baseline, superpixels and progress */
} xai_evaluate_options;

/* Scores explanations of a batch [N, 3, H, W] with the metrics of a comma-separated list (or
 * "all": every metric, the mask metrics when masks are given). The result holds "scores"
 * [metrics, N] (NaN where a score is undefined for an image), "map" [N, H, W] (the maps scored)
 * and metadata JSON {"metrics": [{"name", "direction", "scores", "mean", "standardError",
 * "count", "settings", "curves", "seconds"}], "targets": [...], "method": ...}. */
xai_status xai_evaluate(xai_model *model, const char *metrics, const xai_tensor_view *input,
                        const xai_evaluate_options *options, xai_result **out_result);

/* xai_model_open with options: NULL or {"precision": "exact" | "fp32" | "fast" | "tf32" | "3xtf32"}.
 * "exact" (the default; "fp32" is the same) keeps every pass on direct convolutions (the same bits
 * every run, input gradients within about 1e-6 of PyTorch's on VGG16); "fast" lets forward-only
 * passes (occlusion, LIME, KernelSHAP, RISE batches) use Winograd where the CPU offers it: about
 * 15 % faster there, maps within about 3e-3. "tf32" runs every GEMM on TF32 tensor cores (PyTorch's
 * default for convolutions), "3xtf32" on tensor cores at fp32-class accuracy: both on NVIDIA GPUs
 * whose OpenCL takes inline PTX mma.sync; elsewhere GEMMs run fp32 and the provenance says so. */
xai_status xai_model_open2(const char *path_or_zoo, const char *device, const char *options_json, xai_model **out_model);

/* Metrics and their knobs as JSON: {"metrics": [{"name", "summary", "direction", "needsMasks",
 * "reexplains", "knobs": [...]}], "knobs": [...]}. */
xai_status xai_metrics_json(char **out_json);

/* Preprocesses image files (PNG, JPEG, or .npy tensors already preprocessed) exactly as `xai
 * explain` does: decode, resize, centre crop, normalise with the model's preprocessing. options_json:
 * NULL or {"preset": "imagenet" | "none" | "r,g,b/r,g,b", "resize": side}. The result holds the
 * tensor "input" [N, 3, H, W] and metadata JSON {"sources": [...], "stems": [...]}. */
xai_status xai_preprocess(xai_model *model, const char *const *paths, size_t n_paths,
                          const char *options_json, xai_result **out_result);

/* A named tensor of a result. For a name a result of its kind may hold but this one does not
 * ("raw" or "segments" of a method without them), returns XAI_OK with *data = NULL and *rank = 0;
 * for any other name (an explanation asked for "scores", say), an error naming it.
 * The pointers stay valid until xai_result_free. */
xai_status xai_result_tensor(const xai_result *result, const char *name, const float **data,
                             const int64_t **shape, size_t *rank);
/* Metadata as JSON. For explanations: method, device, targets, scores, diagnostics (per image;
 * null where not finite), parameters, seconds. */
xai_status xai_result_meta_json(const xai_result *result, char **out_json);
void xai_result_free(xai_result *result);

/* Draws a map over a picture as `xai explain` does: rgb is height x width x 3 bytes, map is
 * map_height x map_width floats covering the whole picture, out receives height x width x 3 bytes.
 * style_json: NULL or {"colormap": "jet" | "viridis" | "inferno" | "turbo" | "diverging",
 * "sign": "auto" | "positive" | "negative" | "absolute" | "all", "alpha": 0.5, "percentile": 99,
 * "detail": "region" | "pixel"}. "detail" is the method's (see xai_methods_json): with sign "auto",
 * pixel-level maps (saliency, inputxgrad, smoothgrad, ig) are drawn as magnitude, opaque where strong. */
xai_status xai_overlay(const uint8_t *rgb, int64_t height, int64_t width, const float *map,
                       int64_t map_height, int64_t map_width, const char *style_json, uint8_t *out);

/* Version 3 ------------------------------------------------------------------------------------ */

/* Explains image files into a folder as `xai explain` does, with an open model: per image and
 * method OUT/<stem>/<method>.npy (float32 [H, W]), <method>.raw.npy, the overlay <method>.png, one
 * line in results.jsonl, and OUT/index.html when "save" holds "html". A failing image or method
 * fails alone (listed in the summary) and the run goes on; what is already written is skipped.
 * request_json, a JSON object (camelCase keys):
 *   "out"        the output folder (required)
 *   "inputs"     files, folders (searched recursively) and .txt manifests, with "shard": "i/n"; or
 *   "files"      paths, with "stems": each file's output folder name (a driver that splits a run
 *                over processes names them once: xai_list_inputs); default: the file names
 *   "methods"    a comma-separated string or a list (default "gradcam")
 *   "knobs"      a JSON object of knobs; "target": "top1" (default) or a class index
 *   "save"       any of "raw", "png", "html" (default all); "overwrite": false; "imageBatch": 8
 *   "results"    where the result lines go (default OUT/results.jsonl)
 *   "style"      {"colormap", "sign", "alpha", "percentile"} as xai_overlay; "modelName" for the records
 * progress: NULL or called with (0, 1) first, then (files done, files in all) after each group of
 * imageBatch files; non-zero cancels after that group's outputs are written (XAI_ERR_CANCELLED).
 * out_summary_json: {"written", "skipped", "failures": ["<file> <method>: <error>", ...], "warnings":
 * ["<stem>/<method>.npy (<file>): the map is constant ...", ...] (maps written that explain nothing), "seconds",
 * "report": path or null}. */
xai_status xai_explain_files(xai_model *model, const char *request_json, xai_progress_fn progress, void *user,
                             char **out_summary_json);

/* Scores explanations of image files as `xai evaluate` does, with an open model: for each image and
 * method, the map OUT/<stem>/<method>.npy (made and written there where there is none), then each
 * metric; one line per image x method x metric in OUT/metrics.jsonl, and OUT/index.html with the
 * scores. request_json: "out", "files" (with "stems") or "inputs", "methods", "knobs", "target"
 * as xai_explain_files, and
 *   "metrics"     a comma-separated string or a list (default "deletion,insertion"; "all")
 *   "metricKnobs" a JSON object of metric knobs (xai_metrics_json); "seed" defaults to the methods'
 *   "masks"       a folder of ground-truth masks <stem>.png or <stem>.npy (the localisation metrics)
 *   "results"     where the metric lines go (default OUT/metrics.jsonl); "report": true
 * progress: NULL or called with (0, 1) first, then (files done, files in all) after each file.
 * out_summary_json: {"scores": [{"method", "metric", "scores": [per image, null where undefined]}],
 * "failures": [...], "report": path or null}. */
xai_status xai_evaluate_files(xai_model *model, const char *request_json, xai_progress_fn progress, void *user,
                              char **out_summary_json);

/* The files `xai explain` would explain for these inputs (files, folders, .txt manifests), in its
 * order; shard: NULL or "i/n" (every n-th from the i-th). out_json: {"files": [...], "stems": [...]},
 * the stems being the output folders one run gives them (name, name-2, ...). */
xai_status xai_list_inputs(const char *const *inputs, size_t n_inputs, const char *shard, char **out_json);

/* Writes folder/index.html from folder/results.jsonl (and metrics.jsonl) as `xai explain` does at
 * the end of a run; out_path receives its path. */
xai_status xai_write_report(const char *folder, char **out_path);

#ifdef __cplusplus
}
#endif

#endif /* XAI_H */
