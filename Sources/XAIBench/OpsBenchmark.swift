import ArgumentParser
import Foundation
import XAI

/// One distinct convolution of a network and how often it occurs.
struct ConvLayer: Codable {
    let name: String
    let inChannels, outChannels, kernel, stride, padding, inputSize: Int
    let count: Int

    var params: Conv2DParams { Conv2DParams(stride: stride, padding: padding) }
    var outputSize: Int { (inputSize + 2 * padding - kernel) / stride + 1 }
    /// Multiply-adds x 2 for one image.
    var flopsPerImage: Double { 2 * Double(outChannels * outputSize * outputSize * inChannels * kernel * kernel) }
}

/// The distinct convolutions of torchvision's ResNet-50 (v1.5: stride on the 3x3) at 224x224.
func resnet50Convolutions() -> [ConvLayer] {
    var layers: [String: ConvLayer] = [:]
    var order: [String] = []
    func add(_ cin: Int, _ cout: Int, _ k: Int, _ s: Int, _ size: Int) {
        let p = k / 2
        let key = "\(k)x\(k)/\(s) \(cin)->\(cout) @\(size)"
        if let l = layers[key] {
            layers[key] = ConvLayer(name: key, inChannels: cin, outChannels: cout, kernel: k, stride: s, padding: p, inputSize: size, count: l.count + 1)
        } else {
            layers[key] = ConvLayer(name: key, inChannels: cin, outChannels: cout, kernel: k, stride: s, padding: p, inputSize: size, count: 1)
            order.append(key)
        }
    }
    add(3, 64, 7, 2, 224)
    var inC = 64, size = 56
    for (planes, blocks, firstStride) in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)] {
        for b in 0..<blocks {
            let s = b == 0 ? firstStride : 1
            add(inC, planes, 1, 1, size)
            add(planes, planes, 3, s, size)
            let outSize = size / s
            add(planes, planes * 4, 1, 1, outSize)
            if b == 0 { add(inC, planes * 4, 1, s, size) }
            inC = planes * 4
            size = outSize
        }
    }
    return order.map { layers[$0]! }
}

struct OpsBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops",
        abstract: "The sgemm ceiling, then every distinct ResNet-50 convolution (224x224) forward, with GFLOP/s and the fraction of the ceiling; --profile adds each layer's device time by kernel on OpenCL.")

    @Option(help: "cpu, gpu or gpu:N.") var device = "cpu"
    @Option(help: "exact (fp32), fast, tf32 or 3xtf32 (xai explain --help); the header says what ran.") var precision = "exact"
    @Option(help: "Comma-separated batch sizes.") var batches = "1,32"
    @Option(name: .customLong("repeat"), help: "Timed repetitions per row (after one warm-up).") var repeats = 3
    @Option(help: "Square GEMM size for the ceiling (default 4096; 1024 on OpenCL CPU devices).") var gemmSize: Int?
    @Option(help: "Write all figures as JSON to this file.") var json: String?
    @Flag(help: "OpenCL devices: each layer's device time by kernel, from profiling events (per timed run).") var profile = false

    struct Row: Codable {
        let layer: String
        let batch: Int
        let count: Int
        let timing: Timing
        let gflops: Double
        let fractionOfCeiling: Double
        /// With --profile on an OpenCL device: milliseconds of device time per timed run, by kernel.
        let kernelMilliseconds: [String: Double]?
    }

    struct Report: Codable {
        let date: String
        let host: HostInfo
        let backend: String
        let ceilingName: String
        let ceilingGFlops: Double
        let rows: [Row]
        let networkTotals: [String: Double]
    }

    func run() throws {
        let dev = try Device(parsing: device)
        let backend = try Backends.make(dev, precision: try Precision(parsing: precision), profileKernels: profile)
        let kernels = (backend as? ProfilesKernels).flatMap { $0.profilesKernels ? $0 : nil }
        let host = HostInfo.current()
        let batchList = try batches.split(separator: ",").map { s -> Int in
            guard let b = Int(s), b > 0 else { throw ValidationError("--batches: '\(s)' is not a positive integer") }
            return b
        }
        print("machine: \(host.cpuModel), \(host.logicalCores) logical cores, \(gib(host.memoryBytes)) memory")
        print("backend: \(describe(backend))")

        let (ceiling, ceilingName) = try measureCeiling(backend, size: gemmSize ?? (isOpenCLOnCPU(backend) ? 1024 : 4096), repeats: repeats)
        print("ceiling: \(ceilingName) " + String(format: "%.1f GFLOP/s\n", ceiling))

        var rows: [Row] = []
        var totals: [String: Double] = [:]
        let layers = resnet50Convolutions()
        for batch in batchList {
            var totalTime = 0.0, totalFlops = 0.0
            for layer in layers {
                let x = try backend.upload(Tensor.uniform([batch, layer.inChannels, layer.inputSize, layer.inputSize], seed: 3))
                let w = try backend.upload(Tensor.gaussian([layer.outChannels, layer.inChannels, layer.kernel, layer.kernel],
                                                           std: 0.05, seed: 4))
                let bias = try backend.upload(Tensor.uniform([layer.outChannels], seed: 5))
                // The warm-up's launches (and the ceiling's, before the first layer) are not the timed runs'.
                let t = try Timing.measure(repeats: repeats, afterWarmup: { _ = try? kernels?.takeKernelProfile() }) {
                    _ = try backend.conv2d(x, weight: w, bias: bias, params: layer.params, activation: .relu)
                    try backend.synchronize()
                }
                let byKernel = try kernels.map { k in
                    Dictionary(try k.takeKernelProfile().map { ($0.name, $0.seconds * 1e3 / Double(t.runs)) }, uniquingKeysWith: +)
                }
                let flops = layer.flopsPerImage * Double(batch)
                let gf = flops / t.median / 1e9
                rows.append(Row(layer: layer.name, batch: batch, count: layer.count, timing: t, gflops: gf, fractionOfCeiling: gf / ceiling,
                                kernelMilliseconds: byKernel))
                totalTime += t.median * Double(layer.count)
                totalFlops += flops * Double(layer.count)
            }
            totals["batch\(batch)_seconds"] = totalTime
            totals["batch\(batch)_gflops"] = totalFlops / totalTime / 1e9
            totals["batch\(batch)_fraction_of_ceiling"] = totalFlops / totalTime / 1e9 / ceiling
        }

        if let json {
            let formatter = ISO8601DateFormatter()
            let report = Report(date: formatter.string(from: Date()), host: host, backend: backend.name, ceilingName: ceilingName,
                                ceilingGFlops: ceiling, rows: rows, networkTotals: totals)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }

        printTable(["ResNet-50 conv (224x224)", "x", "batch", "median", "min", "GFLOP/s", "of ceiling"], rows.map { r in
            [r.layer, "\(r.count)", "\(r.batch)", formatSeconds(r.timing.median), formatSeconds(r.timing.min),
             String(format: "%.1f", r.gflops), String(format: "%.0f%%", r.fractionOfCeiling * 100)]
        })
        if kernels != nil {
            print("\ndevice time by kernel per timed run (profiling events):")
            printTable(["ResNet-50 conv (224x224)", "batch", "kernels: ms (share)"], rows.map { r in
                let k = (r.kernelMilliseconds ?? [:]).sorted { $0.value > $1.value }
                let total = k.reduce(0) { $0 + $1.value }
                return [r.layer, "\(r.batch)", k.map { String(format: "%@ %.3f (%.0f%%)", $0.key, $0.value, total > 0 ? $0.value / total * 100 : 0) }
                    .joined(separator: ", ")]
            })
        }
        print("")
        for batch in batchList {
            let seconds: Double = totals["batch\(batch)_seconds"]!
            let gflops: Double = totals["batch\(batch)_gflops"]!
            let perImage = seconds / Double(batch) * 1000
            let line = String(format: "ResNet-50 convolutions, batch %d: %.3f s per batch (%.1f ms/image), %.1f GFLOP/s = %.0f%% of the %.1f GFLOP/s ceiling",
                              batch, seconds, perImage, gflops, gflops / ceiling * 100, ceiling)
            print(line)
        }
    }
}

/// The compute ceiling in GFLOP/s: a square GEMM on the backend (OpenBLAS sgemm on the CPU,
/// the backend's own GEMM kernel on OpenCL devices), median of `repeats` after a warm-up.
func measureCeiling(_ backend: any Backend, size n: Int, repeats: Int) throws -> (Double, String) {
    let a = try backend.upload(Tensor.uniform([n, n], seed: 1)), b = try backend.upload(Tensor.uniform([n, n], seed: 2))
    let t = try Timing.measure(repeats: max(repeats, 3)) {
        _ = try backend.gemm(a, b, transposeA: false, transposeB: false, alpha: 1, bias: nil, activation: .identity)
        try backend.synchronize()
    }
    let gemm = backend.details.facts.first { $0.0 == "GEMM" }?.1 ?? "gemm"
    let name = backend.device == .cpu ? "OpenBLAS sgemm \(n)^3" : "OpenCL \(gemm) \(n)^3"
    return (2 * Double(n) * Double(n) * Double(n) / t.median / 1e9, name)
}

func gib(_ bytes: Int) -> String { String(format: "%.1f GiB", Double(bytes) / Double(1 << 30)) }
