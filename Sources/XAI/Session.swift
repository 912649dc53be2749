import Foundation

/// A model opened once for explaining: the graph on a device, its preprocessing, input size,
/// classes and labels. The command line's commands, the benchmark, the C interface's model handle
/// and Python all open models through it, so a model means the same thing to each.
public final class Session: @unchecked Sendable {
    /// The ONNX file or zoo name it was opened from.
    public let source: String
    public let model: ExplainedModel
    /// The `model.json` beside an ONNX file (preprocessing and labels), where there is one.
    public let sidecar: ModelSidecar?
    /// How images are turned into the model's input: `preset` and `resize` where given, else the
    /// sidecar's, else ImageNet's.
    public let preprocessing: Preprocessing
    /// The model's input size and output classes.
    public let height: Int, width: Int, classes: Int
    public let precision: Precision
    /// What produced this session's results, recorded beside each of them.
    public let provenance: Provenance

    /// Opens `spec` (an ONNX file or a ``Zoo`` name) on `device`.
    /// - Parameters:
    ///   - preset: normalisation (`imagenet`, `none`, `r,g,b/r,g,b`) over the sidecar's.
    ///   - resize: shorter side before the centre crop, over the sidecar's.
    ///   - memoryBudget: bytes methods may use for batches (default: the backend's own).
    ///   - precision: `exact` (the default) or `fast` (``Precision``).
    /// - Throws: the importer's errors (with the file), ``XAIError/deviceUnavailable(device:reason:)``,
    ///   and ``XAIError/unsupported(op:reason:)`` for a model without one image input
    ///   `[N, 3, H, W]` and one output of logits.
    public convenience init(_ spec: String, device: Device = .cpu, preset: String? = nil, resize: Int? = nil, memoryBudget: Int? = nil,
                            precision: Precision = .exact) throws {
        let graph = try Models.load(spec)
        let sidecar = try ModelSidecar.load(forModel: spec)
        let backend = try Backends.make(device, memoryBudget: memoryBudget, precision: precision)
        try self.init(source: spec, model: try ExplainedModel(graph: graph, backend: backend), sidecar: sidecar,
                      preprocessing: try Preprocessing.resolve(preset: preset, resize: resize, sidecar: sidecar), precision: precision)
    }

    /// A session over a model already on a backend (tests, the benchmark's synthetic models).
    public init(source: String, model: ExplainedModel, sidecar: ModelSidecar? = nil, preprocessing: Preprocessing = .imagenet,
                precision: Precision = .exact) throws {
        let summary = try model.summary()
        guard let input = summary.shapes[model.inputName], input.rank == 4, input[1] == 3,
              let output = summary.shapes[model.outputName], output.rank >= 1 else {
            throw XAIError.unsupported(op: source, reason: "needs one image input [N, 3, H, W] and one output of logits")
        }
        self.source = source
        self.model = model
        self.sidecar = sidecar
        self.preprocessing = preprocessing
        self.precision = precision
        provenance = Provenance(backend: model.backend, precision: precision)
        (height, width, classes) = (input[2], input[3], output.count / max(output[0], 1))
    }

    public var graph: Graph { model.graph }
    public var backend: any Backend { model.backend }

    /// The label of class `index`, where the sidecar names it.
    public func label(_ index: Int) -> String? { sidecar?.label(index) }

    /// One file (PNG, JPEG or a preprocessed `.npy`) as the model's input: one image, or several
    /// for a `.npy` batch.
    public func prepare(_ path: String) throws -> [PreparedImage] {
        try preprocessing.prepare(path, height: height, width: width)
    }

    /// The methods of a comma-separated list (`all`: every method that applies to the model).
    public func methods(_ list: String) throws -> [String] { try MethodRegistry.expand(list, model: model) }

    /// Method `name` built for this model from `configuration`, with the baseline it asked for.
    /// - Parameters:
    ///   - baseline: a baseline given as a tensor, over the `baseline` knob.
    ///   - segmentation: superpixels given as a label map, over the `segmentation` knobs.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` naming the knob at fault.
    public func method(_ name: String, configuration: MethodConfiguration = MethodConfiguration(), progress: PerturbationProgress? = nil,
                       baseline: Baseline? = nil, segmentation: Segmentation? = nil, on other: ExplainedModel? = nil) throws -> ConfiguredMethod {
        try MethodRegistry.make(name, model: other ?? model, configuration: configuration,
                                context: MethodContext(preprocessing: preprocessing, progress: progress, baseline: baseline, segmentation: segmentation))
    }

    /// The model as JSON: name, source, device, input shape, classes, labels, CAM layers, FLOPs and
    /// preprocessing (the C interface's `xai_model_info_json`, Python's `Model.info`).
    public var info: [String: Any] {
        let summary = try? model.summary()
        return ["name": graph.name, "source": source, "device": backend.name, "inputShape": [1, 3, height, width],
                "classes": classes, "labels": sidecar?.labels ?? NSNull() as Any,
                "camLayers": (try? model.camCandidates()) ?? [], "defaultCamLayer": (try? model.camLayer(nil)) ?? NSNull() as Any,
                "flopsPerImage": summary?.flopsPerImage ?? 0, "precision": precision.rawValue,
                "provenance": ["engine": provenance.engine, "device": provenance.device, "precision": provenance.precision,
                               "algorithms": provenance.algorithms, "host": provenance.host],
                "preprocessing": ["mean": preprocessing.mean, "std": preprocessing.std, "resize": preprocessing.resize ?? NSNull() as Any]]
    }
}
