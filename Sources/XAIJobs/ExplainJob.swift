import Foundation
import XAI

/// One line of `results.jsonl`: what was explained, how, and where the outputs are.
public struct ResultRecord: Codable, Sendable {
    public var image: String
    public var stem: String
    public var model: String
    public var method: String
    public var target: Int
    public var label: String?
    public var score: Float
    public var parameters: [String: String]
    public var seed: UInt64
    public var seconds: Double
    public var device: String
    public var diagnostics: [String: Double]
    public var files: [String]
    /// Engine, device, precision and the algorithms' rule: what it takes to get these bits again.
    public var provenance: Provenance?
}

/// NaN and infinities in scores and diagnostics are written as strings, so a record is never lost
/// to a value JSON cannot hold.
let nonFiniteJSON = (positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")

/// The encoder of one `.jsonl` line (`results.jsonl`, `metrics.jsonl`): sorted keys, non-finite
/// numbers as strings.
public func jsonLinesEncoder() -> JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: nonFiniteJSON.positiveInfinity,
                                                                  negativeInfinity: nonFiniteJSON.negativeInfinity, nan: nonFiniteJSON.nan)
    return encoder
}

/// The decoder of those lines.
public func jsonLinesDecoder() -> JSONDecoder {
    let decoder = JSONDecoder()
    decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: nonFiniteJSON.positiveInfinity,
                                                                    negativeInfinity: nonFiniteJSON.negativeInfinity, nan: nonFiniteJSON.nan)
    return decoder
}

/// One explanation run over a set of inputs (what `xai explain` and `xai demo` do, and what the C
/// interface's `xai_explain_files` does for a worker of a larger run): for each image and method,
/// the map, the raw tensor, the overlay, one line in `results.jsonl`, and at the end the HTML
/// report. A failing image or method is reported and the run goes on.
public struct ExplainJob {
    /// The ONNX file or zoo name: opened unless `session` is given, and named in every record.
    public var model: String
    /// Files, folders and manifests (``collectInputs(_:shard:)``); ignored when `files` is given.
    public var inputs: [String]
    public var methods: String
    public var device: Device = .cpu
    public var precision = Precision.exact
    public var target: Target = .predicted
    public var out: String
    /// Any of `raw`, `png`, `html`.
    public var saving: Set<String> = ["raw", "png", "html"]
    public var overwrite = false
    public var shard: String?
    public var quiet = false
    public var preset: String?
    public var resize: Int?
    public var style = HeatmapStyle()
    public var configuration = MethodConfiguration()
    /// A file to log resident memory after each input to (for the flat-memory test).
    public var memoryLog: String?
    /// Images per call for the methods that explain a batch in one pass (``MethodSpec/batchesImages``),
    /// and files decoded ahead.
    public var imageBatch = 8
    /// A session already open (a worker explaining batch after batch opens its model once); `model`,
    /// `device`, `precision`, `preset` and `resize` are then the session's.
    public var session: Session?
    /// The files to explain and each one's output folder, instead of `inputs` and `shard`: a driver
    /// that splits one run over workers lists the inputs and names their folders once for the whole
    /// run (``outputStems(_:)``), so a folder does not depend on which worker explained the file.
    /// A file holding several images (an `.npy` batch) gets `<stem>_<i>`, as in a single run.
    public var files: [(path: String, stem: String)]?
    /// Where the result lines go (default `OUT/results.jsonl`).
    public var resultsPath: String?
    /// Errors as the caller spells them (the command line names parameters by their flags).
    public var describeError: (Error) -> String = { ($0 as? XAIError)?.description ?? "\($0)" }
    /// Whether errors and warnings are also printed to standard error as they happen (they are
    /// always in the summary).
    public var printsErrors = true
    /// Called after each group of files with (files done, files in all); returning `true` stops
    /// the run after the outputs of the finished group are written (``XAIError/cancelled(operation:)``).
    public var onProgress: ((Int, Int) -> Bool)?

    public init(model: String, inputs: [String], methods: String, out: String) {
        self.model = model
        self.inputs = inputs
        self.methods = methods
        self.out = out
    }

    public struct Summary {
        public var written = 0, skipped = 0
        public var failures: [String] = []
        /// Maps written that explain nothing (every pixel the same value), each with what to try.
        public var warnings: [String] = []
        public var seconds = 0.0
        public var report: String?
    }

    /// What every image of the run shares.
    private struct Setup {
        let session: Session
        let names: [String]
        let files: [String]
        /// Each file's output folder where the caller named them.
        let stems: [String]?
    }

    private func setUp() throws -> Setup {
        if let unknown = saving.sorted().first(where: { !["raw", "png", "html"].contains($0) }) {
            throw XAIError.invalidArgument(parameter: "save", value: unknown, reason: "none of raw, png, html")
        }
        guard (1...4096).contains(imageBatch) else {
            throw XAIError.invalidArgument(parameter: "imageBatch", value: "\(imageBatch)", reason: "must be between 1 and 4096")
        }
        let session = try self.session ?? Session(model, device: device, preset: preset, resize: resize, precision: precision)
        let names = try session.methods(methods)
        // Every method's knobs are checked before the first image, so a bad flag fails fast.
        for name in names { _ = try session.method(name, configuration: configuration) }
        if let files {
            return Setup(session: session, names: names, files: files.map(\.path), stems: files.map(\.stem))
        }
        return Setup(session: session, names: names, files: try collectInputs(inputs, shard: shard), stems: nil)
    }

    public func run() throws -> Summary {
        let started = Date()
        let setup = try setUp()
        let resultsPath = self.resultsPath ?? (out as NSString).appendingPathComponent("results.jsonl")
        let results = try OutputFile(appendingTo: resultsPath)
        let progress = ProgressLine(quiet: quiet)
        let writer = OutputWriter(results: results, pending: 2 * max(imageBatch, 1), describe: describeError)
        var summary = Summary()
        var usedStems = Set<String>()
        let memoryLog = try self.memoryLog.map { try OutputFile(appendingTo: $0) }
        func fail(_ failure: String) {
            progress.finish()
            if printsErrors { printError("error: \(failure)") }
            summary.failures.append(failure)
        }
        // Outputs that could not be written, reported from this thread between groups.
        func reportWriteFailures() {
            for failure in writer.takeFailures() { fail(failure) }
        }
        // Files are decoded and preprocessed a group ahead on another thread, and outputs are
        // written on a third, while the device explains the current group.
        let groupSize = max(imageBatch, 1)
        let groups = stride(from: 0, to: setup.files.count, by: groupSize).map { $0..<min($0 + groupSize, setup.files.count) }
        var next = groups.first.map { prefetch(setup, $0) }
        for (g, group) in groups.enumerated() {
            let prepared = next?.wait() ?? []
            next = g + 1 < groups.count ? prefetch(setup, groups[g + 1]) : nil
            var work: [Pending] = []
            for (index, outcome) in zip(group, prepared) {
                // Resident memory after each input, for the test that long runs stay flat.
                try memoryLog?.write(Data("\(index) \(residentKilobytes())\n".utf8))
                let images: [PreparedImage]
                switch outcome {
                case .success(let i): images = i
                case .failure(let error):
                    fail("\(setup.files[index]): \(describeError(error))")
                    continue
                }
                for (b, image) in images.enumerated() {
                    // Inputs with the same name in different folders get distinct output folders.
                    let base = setup.stems.map { PreparedImage.stem($0[index], image: b, of: images.count) } ?? image.stem
                    var stem = base, k = 2
                    while usedStems.contains(stem) { stem = "\(base)-\(k)"; k += 1 }
                    usedStems.insert(stem)
                    let folder = (out as NSString).appendingPathComponent(stem)
                    try FileSystem.createDirectory(folder)
                    let picturePath = (folder as NSString).appendingPathComponent("input.png")
                    if saving.contains("png") || saving.contains("html"), overwrite || !FileManager.default.fileExists(atPath: picturePath) {
                        writer.submit(picturePath) { try image.picture.writePNG(picturePath) }
                    }
                    work.append(Pending(image: image, stem: stem, folder: folder, index: index))
                }
            }
            for name in setup.names {
                let todo = work.filter { overwrite || !FileManager.default.fileExists(atPath: ($0.folder as NSString).appendingPathComponent("\(name).npy")) }
                summary.skipped += work.count - todo.count
                let perPass = try imagesPerPass(name, setup)
                for start in stride(from: 0, to: todo.count, by: perPass) {
                    let batch = Array(todo[start..<min(start + perPass, todo.count)])
                    let elapsed = Date().timeIntervalSince(started)
                    let done = batch[0].index
                    let rate = done > 0 ? Double(done) / elapsed : 0
                    let eta = rate > 0 ? String(format: ", %.2f img/s, ETA ", rate) + duration(Double(setup.files.count - done) / rate) : ""
                    let what = batch.count == 1 ? batch[0].stem : "\(batch[0].stem) +\(batch.count - 1)"
                    progress.begin("[\(done + 1)/\(setup.files.count)\(eta)] \(what) \(name) ")
                    explain(batch, method: name, setup: setup, progress: progress, writer: writer, summary: &summary)
                }
            }
            reportWriteFailures()
            if let onProgress, onProgress(group.upperBound, setup.files.count) {
                writer.drain()
                results.close()
                throw XAIError.cancelled(operation: "explaining \(setup.files.count) files")
            }
        }
        writer.drain()
        reportWriteFailures()
        summary.written += writer.written
        progress.finish()
        results.close()
        if saving.contains("html") {
            summary.report = try writeReport(folder: out, resultsPath: resultsPath)
        }
        summary.seconds = Date().timeIntervalSince(started)
        return summary
    }

    /// An image waiting for its methods, with its output folder.
    private struct Pending {
        let image: PreparedImage
        let stem: String
        let folder: String
        /// The input file's index (for the progress line).
        let index: Int
    }

    /// Starts decoding and preprocessing `files` on another thread.
    private func prefetch(_ setup: Setup, _ files: Range<Int>) -> Prefetched<[Result<[PreparedImage], Error>]> {
        let (session, paths) = (setup.session, setup.files)
        return Prefetched { files.map { i in Result { try session.prepare(paths[i]) } } }
    }

    /// How many images `method` explains per call: several for the methods that explain a batch
    /// in one pass (as many as `imageBatch` and the memory budget allow), else one.
    private func imagesPerPass(_ method: String, _ setup: Setup) throws -> Int {
        guard imageBatch > 1, try MethodRegistry.spec(method).batchesImages else { return 1 }
        let model = setup.session.model
        return try model.batchSize(requested: nil, bytesPerItem: try model.bytesPerImageForBackward(), cap: imageBatch, parameter: "imageBatch")
    }

    /// Explains `batch` with one method, in one call where there are several images (each image
    /// alone again if that call fails, so one bad image does not take the others with it), and
    /// hands each image's outputs to the writer.
    private func explain(_ batch: [Pending], method name: String, setup: Setup, progress: ProgressLine, writer: OutputWriter,
                         summary: inout Summary) {
        do {
            let configured = try setup.session.method(name, configuration: configuration, progress: { done, total in progress.update("\(done)/\(total)") })
            let input = batch.count == 1 ? batch[0].image.tensor : try Tensor.concatenated(batch.map(\.image.tensor), axis: 0)
            let t0 = Date()
            let a = try configured.method.attribute(input, target: target, baseline: configured.baseline)
            let seconds = Date().timeIntervalSince(t0) / Double(batch.count)
            for (i, pending) in batch.enumerated() {
                let one = try a.image(i, of: batch.count)
                let warning = Self.constantMapWarning(one)
                if let warning {
                    let line = "\(pending.stem)/\(name).npy (\(pending.image.source)): \(warning)"
                    progress.finish()
                    if printsErrors { printError("warning: \(line)") }
                    summary.warnings.append(line)
                }
                writer.submit("\(pending.image.source) \(name)", record: {
                    try self.write(one, for: pending, method: name, parameters: configured.parameters, seconds: seconds, constant: warning != nil,
                                   setup: setup)
                })
            }
        } catch {
            if batch.count > 1 {
                for pending in batch { explain([pending], method: name, setup: setup, progress: progress, writer: writer, summary: &summary) }
                return
            }
            let failure = "\(batch[0].image.source) \(name): \(describeError(error))"
            progress.finish()
            if printsErrors { printError("error: \(failure)") }
            summary.failures.append(failure)
        }
    }

    /// Why one image's map explains nothing, when every pixel has the same finite value, with what
    /// to try where the cause is known: a segmentation of one segment (SLIC in LAB colour on a
    /// preprocessed tensor, whose values are not colours, is the common case), or Meaningful
    /// Perturbation on a saturated probability (the demo model's confident images). `nil` for any
    /// other map.
    static func constantMapWarning(_ a: Attribution) -> String? {
        guard let first = a.map.scalars.first, first.isFinite, a.map.scalars.allSatisfy({ $0 == first }) else { return nil }
        var warning = "the map is constant (every pixel \(first))"
        if let segments = a.diagnostics["segmentCount"]?.first, segments < 2 {
            warning += "; the segmentation found one segment: try --segmentation grid --segments 8 (8 x 8 cells) or the PNG/JPEG instead of a preprocessed tensor"
        }
        // Meaningful Perturbation on a probability of 1 to float32: the softmax's gradient is
        // about 1 - p, so the area penalty alone moves the mask, and it keeps the whole image.
        if let initial = a.diagnostics["initialScore"]?.first, initial > 0.9999 {
            warning += String(format: "; the probability it lowers starts saturated (%.6f), where the softmax's gradient vanishes and the mask keeps the whole image; the logit does not saturate: try --score logit", initial)
        }
        return warning
    }

    /// Writes one image's outputs for one method (the map last, since its presence marks the
    /// method as done for a resumed run) and returns its `results.jsonl` record; `constant` flags
    /// a map ``constantMapWarning(_:)`` warned about.
    private func write(_ a: Attribution, for pending: Pending, method name: String, parameters: [String: String], seconds: Double,
                       constant: Bool, setup: Setup) throws -> ResultRecord {
        let (image, folder) = (pending.image, pending.folder)
        let (height, width) = (setup.session.height, setup.session.width)
        var outputs = ["\(name).npy"]
        let map = try a.map.reshaped([height, width])
        var diagnostics = a.diagnostics.compactMapValues { $0.first }
        // A map with NaN or infinities is written as it is and flagged; the overlay draws them as zero.
        let nonFinite = map.nonFiniteCount
        if nonFinite > 0 { diagnostics["nonFiniteMapValues"] = Double(nonFinite) }
        if constant { diagnostics["constantMap"] = 1 }
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
        return ResultRecord(image: image.source, stem: pending.stem, model: model, method: name, target: a.targets[0],
                            label: setup.session.label(a.targets[0]), score: a.scores[0], parameters: parameters,
                            seed: configuration.seed, seconds: seconds, device: setup.session.backend.name,
                            diagnostics: diagnostics, files: outputs, provenance: setup.session.provenance)
    }
}
