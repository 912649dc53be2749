import Foundation
import XAI

/// Scores explanations: for each image and method, the map `xai explain` wrote in `out` (made and
/// written now where there is none), then each metric of the ``MetricRegistry``; one line per image
/// x method x metric in `out/metrics.jsonl`, and a table of means at the end.
public struct EvaluateJob {
    public var model: String
    public var inputs: [String]
    public var methods: String
    public var metrics: String
    public var masks: String?
    public var device: Device = .cpu
    public var precision = Precision.exact
    public var target: Target = .predicted
    public var out: String
    public var preset: String?
    public var resize: Int?
    public var metricConfiguration = MetricConfiguration()
    public var configuration = MethodConfiguration()
    public var quiet = false
    /// A session already open; `model`, `device`, `precision`, `preset` and `resize` are then the session's.
    public var session: Session?
    /// The files to score, each with its folder in `out` (where its maps are and its mask is named),
    /// instead of `inputs`: what a driver that splits a run over workers hands each one.
    public var files: [(path: String, stem: String)]?
    /// Where the metric lines go (default `OUT/metrics.jsonl`).
    public var metricsPath: String?
    /// Whether `OUT/index.html` is written at the end (a worker of a larger run leaves it to the driver).
    public var writesReport = true
    /// Errors as the caller spells them (the command line names parameters by their flags).
    public var describeError: (Error) -> String = { ($0 as? XAIError)?.description ?? "\($0)" }
    /// Whether errors are also printed to standard error as they happen (they are always in the summary).
    public var printsErrors = true
    /// Called after each file with (files done, files in all); returning `true` stops the run.
    public var onProgress: ((Int, Int) -> Bool)?

    public init(model: String, inputs: [String], methods: String, metrics: String, masks: String?, out: String) {
        (self.model, self.inputs, self.methods, self.metrics, self.masks, self.out) = (model, inputs, methods, metrics, masks, out)
    }

    public struct Summary {
        /// Scores by method and metric, in the order met.
        public var scores: [(method: String, metric: String, values: [Double])] = []
        public var failures: [String] = []
        public var report: String?
    }

    public func run() throws -> Summary {
        let session = try self.session ?? Session(model, device: device, preset: preset, resize: resize, precision: precision)
        let names = try session.methods(methods)
        let chosen = try MetricRegistry.expand(metrics, masks: masks != nil)
        if let masks {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: masks, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw XAIError.file(path: masks, reason: "no such folder (--ground-truth takes a folder of <image stem>.png or .npy masks)")
            }
        }
        // Every knob is checked before the first image, so a bad flag fails fast.
        for name in names { _ = try session.method(name, configuration: configuration) }
        try MetricRegistry.validate(chosen, configuration: metricConfiguration, pixels: session.height * session.width)
        let files = try self.files?.map(\.path) ?? collectInputs(inputs, shard: nil)
        let stems = self.files?.map(\.stem)
        let log = try OutputFile(appendingTo: metricsPath ?? (out as NSString).appendingPathComponent("metrics.jsonl"))
        defer { log.close() }
        let encoder = jsonLinesEncoder()
        let progress = ProgressLine(quiet: quiet)
        var summary = Summary()
        func fail(_ what: String, _ error: Error) {
            progress.finish()
            if printsErrors { printError("error: \(what)\(describeError(error))") }
            summary.failures.append("\(what)\(describeError(error))")
        }
        for (index, file) in files.enumerated() {
            let images: [PreparedImage]
            do { images = try session.prepare(file) } catch { fail("", error); continue }
            for (b, image) in images.enumerated() {
                let stem = stems.map { PreparedImage.stem($0[index], image: b, of: images.count) } ?? image.stem
                var mask: Tensor?
                if let masks {
                    do {
                        mask = try Self.loadMask(folder: masks, stem: stem, height: session.height, width: session.width)
                            .reshaped([1, session.height, session.width])
                    } catch { fail("\(image.source): ", error); continue }
                }
                let folder = (out as NSString).appendingPathComponent(stem)
                for name in names {
                    progress.begin("[\(index + 1)/\(files.count)] \(stem) \(name) ")
                    do {
                        let (map, explainedTarget) = try self.map(image, method: name, folder: folder, session: session)
                        let input = MetricInput(session: session, images: image.tensor, maps: try map.reshaped([1, session.height, session.width]),
                                                targets: [explainedTarget], masks: mask, method: name, methodConfiguration: configuration)
                        let outcomes = try MetricRegistry.evaluate(chosen, input: input, configuration: metricConfiguration) { progress.update($0) }
                        for (metric, outcome) in outcomes {
                            let r = outcome.result
                            let line = MetricRecord(image: image.source, stem: stem, method: name, metric: metric, score: r.scores[0],
                                                    direction: r.direction.rawValue, target: explainedTarget, settings: r.settings,
                                                    seconds: outcome.seconds, curve: r.curves?.first)
                            try log.write(try encoder.encode(line) + Data("\n".utf8))
                            if let i = summary.scores.firstIndex(where: { $0.method == name && $0.metric == metric }) {
                                summary.scores[i].values.append(r.scores[0])
                            } else {
                                summary.scores.append((name, metric, [r.scores[0]]))
                            }
                        }
                    } catch { fail("\(image.source) \(name): ", error) }
                }
            }
            if let onProgress, onProgress(index + 1, files.count) {
                throw XAIError.cancelled(operation: "scoring \(files.count) files")
            }
        }
        progress.finish()
        // The report (index.html) shows the metrics beside the maps.
        if writesReport {
            summary.report = try writeReport(folder: out, resultsPath: (out as NSString).appendingPathComponent("results.jsonl"))
        }
        return summary
    }

    /// The map `xai explain` wrote for this image and method, or a new one (written there, so
    /// the next run reuses it), with the class it explains.
    private func map(_ image: PreparedImage, method: String, folder: String, session: Session) throws -> (Tensor, Int) {
        let (height, width) = (session.height, session.width)
        let path = (folder as NSString).appendingPathComponent("\(method).npy")
        if FileManager.default.fileExists(atPath: path) {
            let map = try NPY.read(path)
            guard map.shape.dims == [height, width] else {
                throw XAIError.inFile(path: path, underlying: .shapeMismatch(op: "map", expected: "[\(height), \(width)] (the model's input)", got: [map.shape]))
            }
            let (_, targets) = try session.model.prepare(image.tensor, target: target)
            return (map, targets[0])
        }
        let configured = try session.method(method, configuration: configuration)
        let a = try configured.method.attribute(image.tensor, target: target, baseline: configured.baseline)
        let map = try a.map.reshaped([height, width])
        try FileSystem.createDirectory(folder)
        try NPY.write(map, to: path)
        return (map, a.targets[0])
    }

    /// `<stem>.npy` (`[H, W]`, non-zero inside) or `<stem>.png` (inside where any channel is above
    /// 127) at the model's input size.
    public static func loadMask(folder: String, stem: String, height: Int, width: Int) throws -> Tensor {
        let npy = (folder as NSString).appendingPathComponent(stem + ".npy"), png = (folder as NSString).appendingPathComponent(stem + ".png")
        if FileManager.default.fileExists(atPath: npy) {
            let t = try NPY.read(npy)
            guard t.shape.count == height * width, t.shape.rank >= 2, Array(t.shape.dims.suffix(2)) == [height, width] else {
                throw XAIError.inFile(path: npy, underlying: .shapeMismatch(op: "mask", expected: "[\(height), \(width)] (the model's input)", got: [t.shape]))
            }
            return Tensor(unchecked: Shape([height, width]), t.scalars.map { $0 != 0 && !$0.isNaN ? 1 : 0 })
        }
        guard FileManager.default.fileExists(atPath: png) else {
            throw XAIError.file(path: (folder as NSString).appendingPathComponent(stem + ".{png,npy}"), reason: "no mask for this image")
        }
        let picture = try RGBImage.read(png)
        guard picture.width == width, picture.height == height else {
            throw XAIError.inFile(path: png, underlying: .shapeMismatch(op: "mask", expected: "\(width)x\(height) pixels (the model's input)",
                                                                          got: [Shape([picture.height, picture.width])]))
        }
        return Tensor(unchecked: Shape([height, width]), (0..<(height * width)).map { p in
            picture.pixels[3 * p] > 127 || picture.pixels[3 * p + 1] > 127 || picture.pixels[3 * p + 2] > 127 ? 1 : 0
        })
    }
}
