import Foundation
import XAICore

/// Direct against Winograd, measured once per machine for the forward-only convolutions of the
/// models `xai-bench tune --device cpu` ran, kept in `conv-tuning.json` in the cache folder (the
/// GEMM tuner's: `$XAI_CACHE_DIR`, else `$XDG_CACHE_HOME/xai`, else `~/.cache/xai`). Under `fast`
/// precision (the `auto` policy) a forward-only layer takes Winograd unless the table measured
/// direct faster for its shape and batch; without a table, wherever Winograd applies. The process
/// never times anything itself, so the same table and inputs give the same bits; a table measured
/// on another CPU or oneDNN build is not applied.
public struct ConvolutionTuningTable: Codable, Sendable, Equatable {
    /// CPU model, oneDNN version and instruction set: what a measurement holds for.
    public var key: String
    public var measured: String
    /// The faster algorithm per convolution (``geometry(_:)``): forward passes only.
    public var choices: [String: ConvolutionAlgorithm]

    public init(key: String, measured: String, choices: [String: ConvolutionAlgorithm]) {
        self.key = key
        self.measured = measured
        self.choices = choices
    }

    /// The cache file (it may not exist).
    public static func file(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let folder: String
        if let dir = environment["XAI_CACHE_DIR"], !dir.isEmpty {
            folder = dir
        } else if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            folder = (xdg as NSString).appendingPathComponent("xai")
        } else {
            folder = (NSHomeDirectory() as NSString).appendingPathComponent(".cache/xai")
        }
        return (folder as NSString).appendingPathComponent("conv-tuning.json")
    }

    /// This machine's key, where oneDNN opened.
    static func key(_ dnnl: OneDNN) -> String {
        "\(HostInfo.cpuModelName()) | oneDNN \(dnnl.version) \(dnnl.isa)"
    }

    /// A convolution's shape, batch and parameters, as the table names it.
    public static func geometry(_ plan: ConvPlan) -> String {
        let p = plan.params
        return "x\(plan.input.dims.map(String.init).joined(separator: "x")) w\(plan.weight.dims.map(String.init).joined(separator: "x"))"
            + " s\(p.strideH)x\(p.strideW) p\(p.padTop),\(p.padLeft),\(p.padBottom),\(p.padRight) d\(p.dilationH)x\(p.dilationW) g\(p.groups)"
    }

    /// The table for `key` in the cache file, or `nil` where there is none. A file that is not a
    /// list of tables, or holds none for this machine, is ignored with one warning naming it.
    static func load(key: String, environment: [String: String], warn: (String) -> Void) -> ConvolutionTuningTable? {
        let path = file(environment: environment)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard let tables = try? JSONDecoder().decode([ConvolutionTuningTable].self, from: data) else {
            warn("xai: ignoring the convolution tuning cache \(path): not a list of tuning tables (rerun `xai-bench tune --device cpu`)")
            return nil
        }
        guard let table = tables.last(where: { $0.key == key }) else {
            warn("xai: ignoring the convolution tuning cache \(path): measured on \(tables.map(\.key).joined(separator: "; ")), not on \(key)")
            return nil
        }
        return table
    }

    /// Stores the table in the cache file, replacing the one with the same key.
    public func store(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let path = Self.file(environment: environment)
        var tables = (FileManager.default.contents(atPath: path).flatMap { try? JSONDecoder().decode([ConvolutionTuningTable].self, from: $0) }) ?? []
        tables.removeAll { $0.key == key }
        tables.append(self)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileSystem.createDirectory(FileSystem.parentFolder(of: path))
        try FileSystem.write(try encoder.encode(tables), to: path)
    }
}

/// What `xai-bench tune --device cpu` measures.
public enum ConvolutionTuner {
    /// Times direct against Winograd (the best of `repeats` runs after a warm-up, on random
    /// operands) for every forward-only convolution Winograd could compute that `run` performs on
    /// the backend it is given, and returns the table of the faster ones, keyed for this machine.
    /// - Throws: ``XAIError/unsupported(op:reason:)`` where oneDNN or its Winograd is not available.
    public static func tune(repeats: Int, run: (CPUBackend) throws -> Void) throws -> (table: ConvolutionTuningTable, seconds: [String: [String: Double]]) {
        let recorder = CPUBackend(convolutionPolicy: .auto)
        guard let dnnl = recorder.dnnl, recorder.offersWinograd else {
            throw XAIError.unsupported(op: "tune --device cpu", reason: "oneDNN's Winograd convolutions need AVX-512 (this CPU: \(recorder.name))")
        }
        recorder.planRecorder.plans = [:]
        try run(recorder)
        let plans = recorder.planRecorder.plans ?? [:]
        let direct = CPUBackend(convolutionPolicy: .direct), winograd = CPUBackend(convolutionPolicy: .winograd)
        var choices: [String: ConvolutionAlgorithm] = [:], seconds: [String: [String: Double]] = [:]
        for (geometry, plan) in plans.sorted(by: { $0.key < $1.key }) {
            var times: [ConvolutionAlgorithm: Double] = [:]
            for (algorithm, backend) in [(ConvolutionAlgorithm.direct, direct), (.winograd, winograd)] {
                let x = try backend.upload(Tensor.uniform(plan.input, in: -1...1, seed: 1))
                let w = try backend.upload(Tensor.uniform(plan.weight, in: -1...1, seed: 2))
                var best = Double.infinity
                for round in 0...max(repeats, 1) {
                    let started = DispatchTime.now().uptimeNanoseconds
                    _ = try backend.conv2d(x, weight: w, bias: nil, params: plan.params, activation: .identity, exact: false)
                    let t = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                    if round > 0 { best = min(best, t) }  // the first run creates the primitive
                }
                times[algorithm] = best
            }
            let winner: ConvolutionAlgorithm = (times[.winograd] ?? .infinity) < (times[.direct] ?? .infinity) ? .winograd : .direct
            choices[geometry] = winner
            seconds[geometry] = Dictionary(uniqueKeysWithValues: times.map { ($0.key.rawValue, $0.value) })
        }
        let table = ConvolutionTuningTable(key: ConvolutionTuningTable.key(dnnl), measured: ISO8601DateFormatter().string(from: Date()), choices: choices)
        return (table, seconds)
    }
}
