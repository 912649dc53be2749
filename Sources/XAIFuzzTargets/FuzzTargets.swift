import Foundation
import XAI

/// What the fuzzers feed untrusted bytes to: each target takes one input the way a user's file
/// reaches the engine, and must either succeed or throw an ``XAIError``. Anything else (a trap, a
/// hang, another error type) is a bug. The libFuzzer executable (`xai-fuzz`, `make fuzz`) and the
/// regression corpus replayed by the tests (`Fuzz/Corpus/<target>/`) both come here.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// An ONNX model: import, rewrites, shape inference, and for small graphs a forward and a
    /// backward pass on the CPU backend.
    case onnx
    /// A `.npy` file: the reader, then the uses a tensor from a user has (input checks, integer
    /// label maps, superpixels from labels).
    case npy
    /// A PNG or JPEG picture: decoding, torchvision-style preprocessing at a square and a
    /// non-square size, and an overlay.
    case image
    /// A method configuration (JSON knobs): parsing, then every method built on a tiny model and,
    /// when its budget is small, run on a random image.
    case config

    /// The outcome of one input.
    public enum Outcome: Equatable, Sendable {
        /// Accepted; `complete` is false where a cap (FLOPs, input size) stopped the target before
        /// its passes, which the replay test counts so that a cap refusing everything shows.
        case accepted(complete: Bool)
        case refused(XAIError.Code)
    }

    /// Runs the target on `data`.
    /// - Throws: only errors that are not ``XAIError`` (a bug the replay test reports).
    public func run(_ data: Data) throws -> Outcome {
        do {
            switch self {
            case .onnx: return .accepted(complete: try Self.onnx(data))
            case .npy: return .accepted(complete: try Self.npy(data))
            case .image: try Self.image(data)
            case .config: try Self.config(data)
            }
            return .accepted(complete: true)
        } catch let e as XAIError {
            return .refused(e.code)
        }
    }

    /// Work is capped so that a fuzzer spends its time on parsing and checking, not on big models.
    static let maxFLOPs = 5e7
    static let maxInputElements = 1 << 16
    /// `XAI_FUZZ_VERBOSE=1` prints what each method of the config target refused.
    static let verbose = ProcessInfo.processInfo.environment["XAI_FUZZ_VERBOSE"] == "1"

    /// Whether the passes ran (false: the model is over the caps, or has no image input).
    static func onnx(_ data: Data) throws -> Bool {
        let graph = try Models.load(data: data, name: "fuzz.onnx")
        let summary = try graph.summary()
        guard let input = graph.imageInput, summary.flopsPerImage <= maxFLOPs else { return false }
        let shape = try input.shape(batch: 1)
        guard shape.count <= maxInputElements else { return false }
        let backend = CPUBackend(memoryBudget: 256 << 20)
        let executor = Executor(graph: graph, backend: backend)
        let pass = try executor.forward(try backend.upload(Tensor.uniform(shape, seed: 1)), forBackward: true)
        guard let output = graph.outputs.first, let y = pass.outputs[output.name] else { return true }
        _ = try executor.backward(pass, seeds: [output.name: try backend.filled(y.shape, value: 1)], wrt: [input.name])
        return true
    }

    /// Whether the tensor's uses ran (false: over the size cap).
    static func npy(_ data: Data) throws -> Bool {
        let t = try NPY.decode(data, path: "fuzz.npy")
        guard t.shape.count <= maxInputElements else { return false }
        _ = t.nonFiniteCount
        if t.shape.rank == 2, t.shape.count > 0 {
            // A feature mask: integer ids per pixel.
            let image = Tensor.uniform([1, 3, t.shape[0], t.shape[1]], seed: 2)
            _ = try Segmentation.labels(t).segment(image, index: 0)
        }
        if t.shape.rank == 4, t.shape[0] >= 1 {
            try t.requireFinite("fuzz.npy")
            _ = try ExplainedModel.image(t, 0)
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("xai-fuzz-\(getpid()).npy").path
        try NPY.write(t, to: path)
        _ = try NPY.read(path)
        return true
    }

    static func image(_ data: Data) throws {
        let picture = try RGBImage.decode(data, path: "fuzz.img")
        for (h, w) in [(16, 16), (12, 20)] {
            let (tensor, shown, placement) = try Preprocessing.imagenet.apply(picture, height: h, width: w)
            _ = try HeatmapStyle().overlay(picture, map: Array(tensor.scalars.prefix(h * w)), mapWidth: w, mapHeight: h, placement: placement)
            _ = shown
        }
    }

    static func config(_ data: Data) throws {
        var c = try MethodConfiguration.parse(json: data)
        // Knobs that name files are not fuzzed (the files are fuzzed by the other targets).
        if c.baseline.hasSuffix(".npy") { c.baseline = "zero" }
        c.featureMask = nil
        let model = try ExplainedModel(graph: try tinyModel(), backend: CPUBackend(memoryBudget: 64 << 20))
        let input = Tensor.uniform([1, 3, 8, 8], seed: 3)
        let affordable = c.steps <= 8 && (c.samples ?? 8) <= 16 && c.masks <= 16 && c.iterations <= 3 && c.segments <= 16
            && (c.batch ?? 1) <= 64
        for name in MethodRegistry.names {
            do {
                var knobs = c
                if knobs.samples == nil { knobs.samples = 8 }
                let configured = try MethodRegistry.make(name, model: model, configuration: knobs)
                if affordable || ["saliency", "inputxgrad", "cam", "gradcam", "gradcampp", "layercam", "xgradcam"].contains(name) {
                    _ = try configured.method.attribute(input, target: .predicted, baseline: configured.baseline)
                }
            } catch let e as XAIError where e.code == .invalidArgument || e.code == .unsupported {
                if verbose { print("  \(name): \(e)") }
                continue
            }
        }
    }

    /// A 3-class CNN on 8x8 pictures: conv 3->4 (3x3, pad 1) + ReLU, global average pooling, linear.
    static func tinyModel() throws -> Graph {
        let nodes = [
            Node(name: "conv", op: .conv(Conv2DParams(padding: 1), activation: .relu, autoPad: .explicit), inputs: ["input", "w", "b"], outputs: ["features"]),
            Node(name: "pool", op: .globalAveragePool, inputs: ["features"], outputs: ["pooled"]),
            Node(name: "flatten", op: .flatten(axis: 1), inputs: ["pooled"], outputs: ["flat"]),
            Node(name: "fc", op: .gemm(transA: false, transB: true, alpha: 1, beta: 1, activation: .identity), inputs: ["flat", "fcw", "fcb"], outputs: ["logits"]),
        ]
        return Graph(name: "tiny", inputs: [ValueInfo(name: "input", shape: [nil, 3, 8, 8])], outputs: [ValueInfo(name: "logits", shape: [nil, 3])],
                     initializers: ["w": Tensor.uniform([4, 3, 3, 3], seed: 10), "b": Tensor.uniform([4], seed: 11),
                                    "fcw": Tensor.uniform([3, 4], seed: 12), "fcb": Tensor.uniform([3], seed: 13)],
                     nodes: nodes)
    }
}
