import Foundation
import XAI

/// One line of `results.jsonl`: what was explained, how, and where the outputs are.
struct ResultRecord: Codable {
    var image: String
    var stem: String
    var model: String
    var method: String
    var target: Int
    var label: String?
    var score: Float
    var parameters: [String: String]
    var seed: UInt64
    var seconds: Double
    var device: String
    var diagnostics: [String: Double]
    var files: [String]
}

/// NaN and infinities in scores and diagnostics are written as strings, so a record is never lost
/// to a value JSON cannot hold.
let nonFiniteJSON = (positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")

/// The encoder of one `.jsonl` line (`results.jsonl`, `metrics.jsonl`): sorted keys, non-finite
/// numbers as strings.
func jsonLinesEncoder() -> JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: nonFiniteJSON.positiveInfinity,
                                                                  negativeInfinity: nonFiniteJSON.negativeInfinity, nan: nonFiniteJSON.nan)
    return encoder
}

/// The decoder of those lines.
func jsonLinesDecoder() -> JSONDecoder {
    let decoder = JSONDecoder()
    decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: nonFiniteJSON.positiveInfinity,
                                                                    negativeInfinity: nonFiniteJSON.negativeInfinity, nan: nonFiniteJSON.nan)
    return decoder
}

/// One explanation run over a set of inputs (what `xai explain` and `xai demo` do): for each image
/// and method, the map, the raw tensor, the overlay, one line in `results.jsonl`, and at the end
/// the HTML report. A failing image or method is reported and the run goes on.
struct ExplainJob {
    var model: String
    var inputs: [String]
    var methods: String
    var device: Device = .cpu
    var target: Target = .predicted
    var out: String
    /// Any of `raw`, `png`, `html`.
    var saving: Set<String> = ["raw", "png", "html"]
    var overwrite = false
    var shard: String?
    var quiet = false
    var preset: String?
    var resize: Int?
    var style = HeatmapStyle()
    var configuration = MethodConfiguration()
    /// A file to log resident memory after each input to (for the flat-memory test).
    var memoryLog: String?

    struct Summary {
        var written = 0, skipped = 0
        var failures: [String] = []
        var seconds = 0.0
        var report: String?
    }

    /// What every image of the run shares.
    private struct Setup {
        let explained: ExplainedModel
        let sidecar: ModelSidecar?
        let preprocessing: Preprocessing
        let height: Int, width: Int
        let names: [String]
        let files: [String]
    }

    private func setUp() throws -> Setup {
        let graph = try Models.load(model)
        let explained = try ExplainedModel(graph: graph, backend: try Backends.make(device))
        let sidecar = try ModelSidecar.load(forModel: model)
        let preprocessing = try Preprocessing.resolve(preset: preset, resize: resize, sidecar: sidecar)
        guard let input = graph.imageInput, let shape = try? input.shape(batch: 1), shape.rank == 4, shape[1] == 3 else {
            throw XAIError.unsupported(op: model, reason: "needs one image input [N, 3, H, W]")
        }
        let names = try MethodRegistry.expand(methods, model: explained)
        // Every method's knobs are checked before the first image, so a bad flag fails fast.
        for name in names { _ = try MethodRegistry.make(name, model: explained, configuration: configuration, context: MethodContext(preprocessing: preprocessing)) }
        return Setup(explained: explained, sidecar: sidecar, preprocessing: preprocessing, height: shape[2], width: shape[3], names: names,
                     files: try collectInputs(inputs, shard: shard))
    }

    func run() throws -> Summary {
        let started = Date()
        let setup = try setUp()
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let resultsPath = (out as NSString).appendingPathComponent("results.jsonl")
        if !FileManager.default.fileExists(atPath: resultsPath) { _ = FileManager.default.createFile(atPath: resultsPath, contents: nil) }
        guard let results = FileHandle(forWritingAtPath: resultsPath) else { throw XAIError.file(path: resultsPath, reason: "cannot be written") }
        results.seekToEndOfFile()
        let encoder = jsonLinesEncoder()
        let progress = ProgressLine(quiet: quiet)
        var summary = Summary()
        var usedStems = Set<String>()
        var memoryLog: FileHandle?
        if let path = self.memoryLog {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            memoryLog = FileHandle(forWritingAtPath: path)
        }
        for (index, file) in setup.files.enumerated() {
            // Resident memory after each input, for the test that long runs stay flat.
            memoryLog?.write(Data("\(index) \(residentKilobytes())\n".utf8))
            let images: [PreparedImage]
            do { images = try setup.preprocessing.prepare(file, height: setup.height, width: setup.width) } catch {
                progress.finish()
                printError("error: \(describe(error))")
                summary.failures.append("\(file): \(describe(error))")
                continue
            }
            for image in images {
                // Inputs with the same name in different folders get distinct output folders.
                var stem = image.stem, k = 2
                while usedStems.contains(stem) { stem = "\(image.stem)-\(k)"; k += 1 }
                usedStems.insert(stem)
                let folder = (out as NSString).appendingPathComponent(stem)
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                let picturePath = (folder as NSString).appendingPathComponent("input.png")
                if saving.contains("png") || saving.contains("html"), overwrite || !FileManager.default.fileExists(atPath: picturePath) {
                    try image.picture.writePNG(picturePath)
                }
                for name in setup.names {
                    let mapPath = (folder as NSString).appendingPathComponent("\(name).npy")
                    if !overwrite && FileManager.default.fileExists(atPath: mapPath) { summary.skipped += 1; continue }
                    let elapsed = Date().timeIntervalSince(started)
                    let rate = index > 0 ? Double(index) / elapsed : 0
                    let eta = rate > 0 ? String(format: ", %.2f img/s, ETA ", rate) + duration(Double(setup.files.count - index) / rate) : ""
                    progress.begin("[\(index + 1)/\(setup.files.count)\(eta)] \(stem) \(name) ")
                    do {
                        let record = try explain(image, stem: stem, folder: folder, method: name, setup: setup, progress: progress)
                        results.write(try encoder.encode(record) + Data("\n".utf8))
                        summary.written += 1
                    } catch {
                        progress.finish()
                        printError("error: \(image.source) \(name): \(describe(error))")
                        summary.failures.append("\(image.source) \(name): \(describe(error))")
                    }
                }
            }
        }
        progress.finish()
        try results.close()
        if saving.contains("html") {
            summary.report = try writeReport(folder: out, resultsPath: resultsPath)
        }
        summary.seconds = Date().timeIntervalSince(started)
        return summary
    }

    /// Explains one image with one method and writes its outputs; the map last, since its presence
    /// marks the method as done for a resumed run.
    private func explain(_ image: PreparedImage, stem: String, folder: String, method name: String, setup: Setup,
                         progress: ProgressLine) throws -> ResultRecord {
        let (height, width) = (setup.height, setup.width)
        let context = MethodContext(preprocessing: setup.preprocessing, progress: { done, total in progress.update("\(done)/\(total)") })
        let configured = try MethodRegistry.make(name, model: setup.explained, configuration: configuration, context: context)
        let t0 = Date()
        let a = try configured.method.attribute(image.tensor, target: target, baseline: configured.baseline)
        let seconds = Date().timeIntervalSince(t0)
        var outputs = ["\(name).npy"]
        let map = try a.map.reshaped([height, width])
        var diagnostics = a.diagnostics.compactMapValues { $0.first }
        // A map with NaN or infinities is written as it is and flagged; the overlay draws them as zero.
        let nonFinite = map.nonFiniteCount
        if nonFinite > 0 { diagnostics["nonFiniteMapValues"] = Double(nonFinite) }
        if saving.contains("raw"), let raw = a.raw {
            try NPY.write(try raw.reshaped(Shape(Array(raw.shape.dims.dropFirst()))), to: (folder as NSString).appendingPathComponent("\(name).raw.npy"))
            outputs.append("\(name).raw.npy")
            if let segments = a.segments {
                try NPY.write(try segments.reshaped([height, width]), to: (folder as NSString).appendingPathComponent("segments.npy"))
            }
        }
        if saving.contains("png") || saving.contains("html") {
            var outline: (labels: [Int32], segments: Set<Int32>)?
            if let segments = a.segments, let raw = a.raw {
                // LIME-style view: the borders of the five strongest segments.
                let top = raw.scalars.indices.filter { raw.scalars[$0].isFinite }.sorted { raw.scalars[$0] > raw.scalars[$1] }.prefix(5)
                outline = (segments.scalars.map { $0.isFinite ? Int32(clamping: Int($0)) : -1 }, Set(top.map { Int32($0) }))
            }
            var style = self.style
            style.detail = (try? MethodRegistry.spec(name))?.detail ?? .region
            let overlay = try style.overlay(image.picture, map: map.scalars, mapWidth: width, mapHeight: height,
                                            placement: image.placement, outline: outline)
            try overlay.writePNG((folder as NSString).appendingPathComponent("\(name).png"))
            outputs.append("\(name).png")
        }
        try NPY.write(map, to: (folder as NSString).appendingPathComponent("\(name).npy"))
        return ResultRecord(image: image.source, stem: stem, model: model, method: name, target: a.targets[0],
                            label: setup.sidecar?.label(a.targets[0]), score: a.scores[0], parameters: configured.parameters,
                            seed: configuration.seed, seconds: seconds, device: setup.explained.backend.name,
                            diagnostics: diagnostics, files: outputs)
    }
}
