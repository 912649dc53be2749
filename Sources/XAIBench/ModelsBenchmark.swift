import ArgumentParser
import Foundation
import XAI

struct ModelsBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Whole-model rows: forward at batch 1 and 32, forward + backward to the input at batch 1, with GFLOP/s against the ceiling.")

    @Option(help: "cpu, gpu or gpu:N.") var device = "cpu"
    @Option(help: "exact (fp32), fast, tf32 or 3xtf32 (xai explain --help); the header says what ran.") var precision = "exact"
    @Option(help: "Comma-separated zoo models or ONNX files.") var models = "resnet18,resnet50"
    @Option(help: "Batch size of the throughput row.") var batch = 32
    @Option(name: .customLong("repeat"), help: "Timed repetitions per row (after one warm-up).") var repeats = 5
    @Option(help: "Write all figures as JSON to this file.") var json: String?
    @Flag(help: "Print where each row's time goes: by op kind and by node (synchronous backends: the CPU), and by kernel from OpenCL profiling events (OpenCL devices).") var profile = false
    @Option(help: "Rows per profile table.") var profileRows = 15

    struct Row: Codable {
        let model: String
        let row: String
        let batch: Int
        let timing: Timing
        let secondsPerImage: Double
        let forwardEquivalents: Double
        let gflops: Double
        let fractionOfCeiling: Double
        /// Kernels one pass enqueues (OpenCL).
        var launches: Int?
    }

    func run() throws {
        let backend = try Backends.make(try Device(parsing: device), precision: try Precision(parsing: precision), profileKernels: profile)
        let host = HostInfo.current()
        print("machine: \(host.cpuModel), \(host.logicalCores) logical cores, \(gib(host.memoryBytes)) memory")
        print("backend: \(describe(backend))")
        let (ceiling, ceilingName) = try measureCeiling(backend, size: isOpenCLOnCPU(backend) ? 1024 : 4096, repeats: 3)
        print("ceiling: \(ceilingName) " + String(format: "%.1f GFLOP/s", ceiling))
        var rows: [Row] = []
        for name in models.split(separator: ",").map(String.init) {
            let graph = try Models.load(name)
            let flops = try graph.summary().flopsPerImage
            let opProfile = profile ? OpProfile() : nil
            let kernels = (backend as? ProfilesKernels).flatMap { $0.profilesKernels ? $0 : nil }
            // The warm-up's launches are not the timed passes'.
            let reset = { opProfile?.reset(); _ = try? kernels?.takeKernelProfile() }
            let executor = Executor(graph: graph, backend: backend, profile: opProfile)
            let inputInfo = graph.imageInput!
            let output = graph.outputs[0].name
            let counted = backend as? CountsTransfers
            // The kernels one more pass enqueues.
            func launches(_ pass: () throws -> Void) throws -> Int? {
                let before = counted?.transfers
                try pass()
                return before.flatMap { b in counted.map { $0.transfers.since(b).kernelLaunches } }
            }
            func add(_ label: String, _ n: Int, _ fwdEq: Double, _ t: Timing, _ launches: Int?) {
                let perImage = t.median / Double(n)
                let gf = fwdEq * flops / perImage / 1e9
                rows.append(Row(model: name, row: label, batch: n, timing: t, secondsPerImage: perImage, forwardEquivalents: fwdEq,
                                gflops: gf, fractionOfCeiling: gf / ceiling, launches: launches))
            }
            for n in [1, batch] {
                let x = try backend.upload(Tensor.uniform(try inputInfo.shape(batch: n), seed: 7))
                let forward = { _ = try backend.download(try executor.forward(x).outputs[output]!) }
                let t = try Timing.measure(repeats: repeats, afterWarmup: reset, forward)
                printProfile(opProfile, "\(name), forward, batch \(n)", passes: t.runs)
                try printKernelProfile(kernels, "\(name), forward, batch \(n)", passes: t.runs)
                add("forward", n, 1, t, try launches(forward))
            }
            let x = try backend.upload(Tensor.uniform(try inputInfo.shape(batch: 1), seed: 7))
            let both = {
                let pass = try executor.forward(x, forBackward: true)
                let y = pass.outputs[output]!
                var seed = Tensor(shape: y.shape)
                seed[0, 0] = 1
                let g = try executor.backward(pass, seeds: [output: try backend.upload(seed)], wrt: [inputInfo.name])
                _ = try backend.download(g[inputInfo.name]!)
            }
            let t = try Timing.measure(repeats: repeats, afterWarmup: reset, both)
            printProfile(opProfile, "\(name), forward + backward to the input, batch 1", passes: t.runs)
            try printKernelProfile(kernels, "\(name), forward + backward to the input, batch 1", passes: t.runs)
            add("forward+backward to input", 1, 2, t, try launches(both))
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(rows).write(to: URL(fileURLWithPath: json))
        }
        print("")
        let counts = rows.contains { $0.launches != nil }
        printTable(["model", "row", "batch", "s/image min / median / max", "fwd-eq", gflopsColumn(backend), "of ceiling"] + (counts ? ["kernel launches"] : []), rows.map { r in
            let perImage = [r.timing.min, r.timing.median, r.timing.max].map { formatSeconds($0 / Double(r.batch)) }.joined(separator: " / ")
            return [r.model, r.row, "\(r.batch)", perImage, String(format: "%.0f", r.forwardEquivalents),
                    String(format: "%.1f", r.gflops), String(format: "%.0f%%", r.fractionOfCeiling * 100)] + (counts ? [r.launches.map { "\($0)" } ?? "-"] : [])
        })
        printWinogradNote(backend)
    }


    /// Device time by kernel per timed pass (OpenCL profiling events), longest first.
    func printKernelProfile(_ kernels: ProfilesKernels?, _ title: String, passes: Int) throws {
        guard let kernels else { return }
        let times = try kernels.takeKernelProfile()
        let total = times.reduce(0) { $0 + $1.seconds } * 1e3 / Double(passes)
        print("\nkernels: \(title), " + String(format: "%.2f ms", total) + " of device time per pass, "
              + "\(times.reduce(0) { $0 + $1.launches } / max(passes, 1)) launches")
        printTable(["kernel", "launches/pass", "ms/pass", "share"], times.prefix(profileRows).map { k in
            [k.name, "\(k.launches / max(passes, 1))", String(format: "%.3f", k.seconds * 1e3 / Double(passes)),
             String(format: "%.1f%%", total > 0 ? k.seconds * 1e3 / Double(passes) / total * 100 : 0)]
        })
    }

    /// The profile's tables (milliseconds per timed pass: by op kind, then the slowest nodes).
    func printProfile(_ profile: OpProfile?, _ title: String, passes: Int) {
        guard let profile else { return }
        func ms(_ e: OpProfile.Entry) -> String { String(format: "%.2f", e.seconds * 1e3 / Double(passes)) }
        let total = profile.ops.reduce(0) { $0 + $1.seconds } * 1e3 / Double(passes)
        print("\nprofile: \(title), " + String(format: "%.1f ms", total) + " per pass in nodes")
        printTable(["op", "pass", "nodes", "ms/pass"], profile.ops.prefix(profileRows).map { e in
            [e.op, e.backward ? "backward" : "forward", "\(e.calls / passes)", ms(e)]
        })
        printTable(["node", "op", "pass", "ms/pass"], profile.nodes.prefix(profileRows).map { e in
            [e.node, e.op, e.backward ? "backward" : "forward", ms(e)]
        })
    }
}
