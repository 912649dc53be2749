import Dispatch
import Foundation
import XAICore

/// `xai-bench tune`'s second stage: each layer's convolution, forward and backward to its input,
/// timed under both lowerings in fp32 (and Winograd's tiles forward, for `--fast`), then under
/// each tensor-core arithmetic the device takes. The faster per layer, direction and arithmetic
/// becomes the device's ``ConvolutionLoweringTable``. Both lowerings give the same bits in every
/// arithmetic (ImplicitConvolutionTests, TensorCoreTests), so the table changes speed only.
public enum ConvolutionLoweringTuner {
    /// One distinct convolution and how often a network runs it (its weight in the totals).
    public struct Layer: Sendable {
        public let name: String
        public let plan: ConvPlan
        public let count: Int
        public init(name: String, plan: ConvPlan, count: Int) {
            self.name = name
            self.plan = plan
            self.count = count
        }
    }

    /// One layer's median seconds under one arithmetic.
    public struct Measurement: Codable, Sendable, Equatable {
        /// ``Layer/name``, and the table's key for it (``XAICore/ConvPlan/layer``).
        public let name: String
        public let layer: String
        public let count: Int
        /// `fp32`, or the tensor cores' ``TensorCores/tableName`` (`tf32`, `3xtf32`, `tf32 emulated`, ...).
        public let arithmetic: String
        /// By lowering, im2col then implicit: ``ConvolutionLowering/allCases``.
        public let forward: [Double]
        public let backward: [Double]
        /// Forward-only passes under `--fast`, by tile (``WinogradTile/allCases``); `nil` where the
        /// layer cannot take it, and under tensor cores (`--fast` is fp32).
        public let winograd: [Double?]

        /// The faster lowering of one direction (im2col on a tie: the kernel a table-less backend
        /// took before the implicit ones existed).
        public func faster(backward isBackward: Bool) -> ConvolutionLowering {
            let t = isBackward ? backward : forward
            return t[1] < t[0] ? .implicit : .im2col
        }

        var directions: ConvolutionLoweringTable.Directions {
            .init(forward: faster(backward: false), backward: faster(backward: true))
        }
    }

    public struct Result: Sendable {
        public let table: ConvolutionLoweringTable
        /// fp32's layers first, then each tensor-core arithmetic's.
        public let measurements: [Measurement]
        /// Tensor-core arithmetics asked for and not timed, with why (the device has none, the probe failed).
        public let skipped: [String]
        /// The fp32 GEMM configuration the kernels ran with (the table's key holds it).
        public let gemm: GEMMConfig
    }

    /// Times `layers` at their plans' batch on OpenCL device `index`: fp32 always, then each of
    /// `tensorCores` where the device takes it (`tensorCorePath`: the path to try instead of the
    /// device's own, e.g. `.emulated` on PoCL: filed as `tf32 emulated`, never as the real
    /// instructions' `tf32`). The table starts from the one stored for this device and
    /// configuration, so layers and arithmetics this run does not time keep their measurements;
    /// with `store`, it is written after fp32 and again after each arithmetic, so a run stopped
    /// half-way keeps what it measured. `environment` says where the table is read and stored
    /// (`XAI_CACHE_DIR`, `XAI_GEMM_TUNING`); the backends take their GEMM configuration, and so
    /// the table's key, from the process's. `progress` sees each layer's measurement as it ends.
    public static func tune(index: Int, layers: [Layer], repeats: Int = 3, tensorCores: [GEMMArithmetic] = [.tf32, .tf32x3],
                            tensorCorePath: TensorCorePath? = nil, store: Bool = true,
                            environment: [String: String] = ProcessInfo.processInfo.environment,
                            progress: (Measurement) -> Void = { _ in }) throws -> Result {
        guard repeats >= 1 else { throw XAIError.invalidArgument(parameter: "repeat", value: "\(repeats)", reason: "must be at least 1") }
        guard !layers.isEmpty, layers.allSatisfy({ $0.count >= 1 }) else {
            throw XAIError.invalidArgument(parameter: "layers", value: "\(layers.count) layers", reason: "needs at least one layer, each counted at least once")
        }
        if let wrong = tensorCores.first(where: { $0 == .fp32 }) {
            throw XAIError.invalidArgument(parameter: "tensorCores", value: wrong.rawValue, reason: "fp32 is always timed; name tf32 or 3xtf32")
        }
        let fp32 = try ConvolutionLowering.allCases.map { try OpenCLBackend(index: index, convolution: $0) }
        // A fixed tile: Winograd wherever it applies, whatever an older table says.
        let winograd = try WinogradTile.allCases.map { try OpenCLBackend(index: index, convolution: .implicit, fastConvolutions: true, winogradTile: $0) }
        let gemm = fp32[0].gemmConfig
        let key = ConvolutionLoweringTable.key(for: fp32[0].info, gemm: gemm)
        let measured = ISO8601DateFormatter().string(from: Date())
        var choices = ConvolutionLoweringTable.load(key: key, environment: environment)?.choices ?? [:]
        var measurements: [Measurement] = []
        func table() -> ConvolutionLoweringTable { ConvolutionLoweringTable(key: key, measured: measured, choices: choices) }

        for layer in layers {
            let (forward, backward) = try time(layer.plan, on: fp32, repeats: repeats)
            var inexact = layer.plan
            inexact.exact = false
            let tiles: [Double?] = try winograd.map { backend in
                guard backend.usesWinograd(inexact) else { return nil }
                return try median(repeats) { try forwardPass(layer.plan, on: backend, exact: false) }
            }
            let m = Measurement(name: layer.name, layer: layer.plan.layer, count: layer.count, arithmetic: GEMMArithmetic.fp32.rawValue,
                                forward: forward, backward: backward, winograd: tiles)
            let fastest = zip(WinogradTile.allCases, tiles).compactMap { tile, t in t.map { (tile, $0) } }.min { $0.1 < $1.1 }
            choices[layer.plan.layer] = .init(forward: m.faster(backward: false), backward: m.faster(backward: true),
                                              winograd: fastest.map { $0.1 < forward.min()! }, winogradTile: fastest?.0,
                                              tensorCores: choices[layer.plan.layer]?.tensorCores)
            measurements.append(m)
            progress(m)
        }
        if store { try table().store(environment: environment) }

        var skipped: [String] = []
        for arithmetic in tensorCores {
            let backends = try ConvolutionLowering.allCases.map {
                try OpenCLBackend(index: index, convolution: $0, arithmetic: arithmetic, tensorCorePath: tensorCorePath)
            }
            guard let name = backends[0].tensorCores?.tableName, backends.allSatisfy({ $0.tensorCores != nil }) else {
                skipped.append("\(arithmetic.rawValue): \(backends.first { $0.tensorCores == nil }!.tensorCoreNote)")
                continue
            }
            for layer in layers {
                let (forward, backward) = try time(layer.plan, on: backends, repeats: repeats)
                let m = Measurement(name: layer.name, layer: layer.plan.layer, count: layer.count, arithmetic: name,
                                    forward: forward, backward: backward, winograd: WinogradTile.allCases.map { _ in nil })
                // fp32's choice was made above for every layer.
                let timed = (choices[layer.plan.layer]?.tensorCores ?? [:]).merging([name: m.directions]) { $1 }
                choices[layer.plan.layer]?.tensorCores = timed
                measurements.append(m)
                progress(m)
            }
            if store { try table().store(environment: environment) }
        }
        return Result(table: table(), measurements: measurements, skipped: skipped, gemm: gemm)
    }

    /// Median seconds of the forward and of the input gradient on each backend (one per lowering).
    private static func time(_ plan: ConvPlan, on backends: [OpenCLBackend], repeats: Int) throws -> (forward: [Double], backward: [Double]) {
        var forward: [Double] = [], backward: [Double] = []
        for backend in backends {
            forward.append(try median(repeats) { try forwardPass(plan, on: backend, exact: true) })
            let gy = try backend.upload(Tensor.uniform(plan.output, seed: 5))
            let w = try backend.upload(Tensor.gaussian(plan.weight, std: 0.05, seed: 4))
            backward.append(try median(repeats) {
                {
                    _ = try backend.conv2dBackwardInput(gy, weight: w, params: plan.params, inputShape: plan.input)
                    try backend.synchronize()
                }
            })
        }
        return (forward, backward)
    }

    private static func forwardPass(_ plan: ConvPlan, on backend: OpenCLBackend, exact: Bool) throws -> () throws -> Void {
        let x = try backend.upload(Tensor.uniform(plan.input, seed: 3))
        let w = try backend.upload(Tensor.gaussian(plan.weight, std: 0.05, seed: 4))
        return {
            _ = try backend.conv2d(x, weight: w, bias: nil, params: plan.params, activation: .relu, exact: exact)
            try backend.synchronize()
        }
    }

    private static func median(_ repeats: Int, _ make: () throws -> () throws -> Void) throws -> Double {
        let body = try make()
        try body()   // builds the kernels
        var times: [Double] = []
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return times.sorted()[times.count / 2]
    }
}
