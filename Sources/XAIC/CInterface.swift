// The C interface declared in include/xai.h. Every exported function checks its arguments before
// anything reaches the engine (a Swift trap would kill the caller's process), catches every error,
// records the message in the thread's last-error slot and returns the status code.
import CXAIHeader
import Foundation
import XAI
import XAIJobs

// MARK: Status and the last error

/// `xai_status` values (XAIError.Code's raw values are the same numbers).
typealias Status = Int32
let statusOK: Status = 0

/// The thread's last error message, freed when the thread ends (a pthread key: Swift has no
/// thread-local storage of its own).
private let lastErrorKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key) { free($0) }
    return key
}()

nonisolated(unsafe) private let emptyString: UnsafeMutablePointer<CChar> = strdup("")!
nonisolated(unsafe) private let versionString: UnsafeMutablePointer<CChar> = strdup(XAIVersion.string)!

private func setLastError(_ message: String?) {
    if let old = pthread_getspecific(lastErrorKey) { free(old) }
    pthread_setspecific(lastErrorKey, message.flatMap { strdup($0) })
}

/// The status of an error, its message recorded for `xai_last_error`.
private func fail(_ error: Error) -> Status {
    if let e = error as? XAIError {
        setLastError(e.description)
        return e.code.rawValue
    }
    setLastError("internal error: \(error)")
    return XAIError.Code.internal.rawValue
}

/// Runs a call's body: success clears the last error, an error becomes its status.
private func call(_ body: () throws -> Void) -> Status {
    do {
        try body()
        setLastError(nil)
        return statusOK
    } catch {
        return fail(error)
    }
}

private func argument(_ name: String, _ reason: String, value: String = "") -> XAIError {
    .invalidArgument(parameter: name, value: value, reason: reason)
}

/// A caller's array pointer, refused when it is not aligned for its element type: Swift reads a
/// typed pointer as aligned, and a misaligned `float *` or `int64_t *` is undefined behaviour (it
/// traps on some CPUs and with some compilers' vector loads).
private func aligned<T>(_ pointer: UnsafePointer<T>?, _ name: String) throws -> UnsafePointer<T>? {
    guard let pointer else { return nil }
    let alignment = MemoryLayout<T>.alignment
    guard Int(bitPattern: pointer) % alignment == 0 else {
        throw argument(name, "must be aligned to \(alignment) bytes (an array of \(T.self == Float.self ? "float" : T.self == Int64.self ? "int64_t" : "\(T.self)"))",
                       value: String(format: "%p", Int(bitPattern: pointer)))
    }
    return pointer
}

private func text(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> String {
    guard let pointer else { throw argument(name, "is NULL") }
    return String(cString: pointer)
}

private func output<T>(_ pointer: UnsafeMutablePointer<T>?, _ name: String) throws -> UnsafeMutablePointer<T> {
    guard let pointer else { throw argument(name, "is NULL (an out-parameter)") }
    return pointer
}

/// Serialises a JSON object into a string the caller frees with `xai_string_free`.
private func jsonString(_ object: Any) throws -> UnsafeMutablePointer<CChar> {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    return try cString(data)
}

private func cString(_ data: Data) throws -> UnsafeMutablePointer<CChar> {
    guard let s = strdup(String(decoding: data, as: UTF8.self)) else { throw XAIError.outOfMemory(op: "string", bytes: data.count, device: "host") }
    return s
}

/// What `xai_result_meta_json` says about an explanation. Values JSON cannot hold (NaN, infinities)
/// are null.
private struct ExplanationMeta: Encodable {
    let method: String
    let device: String
    let targets: [Int]
    let scores: [Double?]
    let labels: [String?]
    let diagnostics: [String: [Double?]]
    let parameters: [String: String]
    let nonFiniteMapValues: Int
    let seconds: Double
    let provenance: Provenance
}

private let encoder: JSONEncoder = {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    return e
}()

// MARK: Handles

/// A model on a device, with its preprocessing and labels (a ``Session``). One lock per handle
/// serialises calls that share a handle across threads (the header asks callers not to, but must
/// not crash if they do).
final class ModelHandle {
    let session: Session
    /// The path or zoo name it was opened with (what `xai_explain_files` records name).
    let spec: String
    let lock = NSLock()

    init(spec: String, device: Device, precision: Precision = .exact) throws {
        session = try Session(spec, device: device, precision: precision)
        self.spec = spec
    }

    var explained: ExplainedModel { session.model }
    var height: Int { session.height }
    var width: Int { session.width }
    var classes: Int { session.classes }

    /// Checks a caller's batch against the model and copies it into a tensor.
    func batch(_ data: UnsafePointer<Float>?, _ shape: UnsafePointer<Int64>?, _ rank: Int, name: String = "input") throws -> Tensor {
        guard let data = try aligned(data, name) else { throw argument(name, "is NULL") }
        guard let shape = try aligned(shape, "shape") else { throw argument("shape", "is NULL") }
        guard rank == 4 else { throw argument("rank", "must be 4 ([N, 3, H, W])", value: "\(rank)") }
        let dims = (0..<4).map { Int(clamping: shape[$0]) }
        guard dims[0] >= 1, dims[1] == 3, dims[2] == height, dims[3] == width else {
            throw XAIError.shapeMismatch(op: name, expected: "[N >= 1, 3, \(height), \(width)] (the model's input)",
                                         got: [try Shape(validating: dims.map { max($0, 0) }, what: "\(name) shape")])
        }
        let checked = try Shape(validating: dims, what: name)
        let tensor = Tensor(unchecked: checked, Array(UnsafeBufferPointer(start: data, count: checked.count)))
        try tensor.requireFinite(name)
        return tensor
    }

    /// A caller's tensor (`xai_tensor`) of one of the `allowed` shapes, `nil` for a NULL pointer.
    func tensor(_ t: UnsafePointer<xai_tensor_view>?, _ name: String, allowed: [[Int]]) throws -> Tensor? {
        guard let t = t?.pointee else { return nil }
        guard let data = try aligned(t.data, "\(name).data") else { throw argument("\(name).data", "is NULL") }
        guard let shape = try aligned(t.shape, "\(name).shape") else { throw argument("\(name).shape", "is NULL") }
        guard (1...8).contains(t.rank) else { throw argument("\(name).rank", "must be between 1 and 8", value: "\(t.rank)") }
        let dims = (0..<t.rank).map { Int(clamping: shape[$0]) }
        let checked = try Shape(validating: dims.map { max($0, 0) }, what: name)
        guard dims.allSatisfy({ $0 >= 0 }), allowed.contains(where: { $0.count == dims.count && zip($0, dims).allSatisfy { $0 < 0 || $0 == $1 } }) else {
            let text = allowed.map { "[" + $0.map { $0 < 0 ? "N" : "\($0)" }.joined(separator: ", ") + "]" }.joined(separator: " or ")
            throw XAIError.shapeMismatch(op: name, expected: text, got: [checked])
        }
        let tensor = Tensor(unchecked: checked, Array(UnsafeBufferPointer(start: data, count: checked.count)))
        try tensor.requireFinite(name)
        return tensor
    }
}

/// Named tensors and metadata; the tensors' memory stays put until the handle is freed.
final class ResultHandle {
    struct Stored {
        let data: UnsafeMutableBufferPointer<Float>
        let shape: UnsafeMutableBufferPointer<Int64>
        let rank: Int
    }

    let names: Set<String>
    let tensors: [String: Stored]
    let meta: Data

    init(names: Set<String>, tensors: [String: Tensor], meta: Data) {
        self.names = names
        self.meta = meta
        var stored: [String: Stored] = [:]
        for (name, t) in tensors {
            let data = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(t.scalars.count, 1))
            _ = data.initialize(from: t.scalars)
            let shape = UnsafeMutableBufferPointer<Int64>.allocate(capacity: max(t.shape.rank, 1))
            _ = shape.initialize(from: t.shape.dims.map { Int64($0) })
            stored[name] = Stored(data: data, shape: shape, rank: t.shape.rank)
        }
        self.tensors = stored
    }

    deinit {
        for s in tensors.values {
            s.data.deallocate()
            s.shape.deallocate()
        }
    }
}

private func handle<T: AnyObject>(_ pointer: OpaquePointer?, _ name: String, as: T.Type) throws -> T {
    guard let pointer else { throw argument(name, "is NULL") }
    return Unmanaged<T>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
}

private func retained(_ object: AnyObject) -> OpaquePointer {
    OpaquePointer(Unmanaged.passRetained(object).toOpaque())
}

private func makeResult(names: Set<String>, tensors: [String: Tensor], meta: [String: Any]) throws -> ResultHandle {
    let data = try JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys])
    return ResultHandle(names: names, tensors: tensors, meta: data)
}

// MARK: Version, errors, strings, listings

@_cdecl("xai_api_version")
public func xai_api_version() -> UInt32 { XAIVersion.api }

@_cdecl("xai_version_string")
public func xai_version_string() -> UnsafePointer<CChar> { UnsafePointer(versionString) }

@_cdecl("xai_last_error")
public func xai_last_error() -> UnsafePointer<CChar> {
    guard let p = pthread_getspecific(lastErrorKey) else { return UnsafePointer(emptyString) }
    return UnsafePointer(p.assumingMemoryBound(to: CChar.self))
}

@_cdecl("xai_string_free")
public func xai_string_free(_ s: UnsafeMutablePointer<CChar>?) { free(s) }

@_cdecl("xai_devices_json")
public func xai_devices_json(_ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    call {
        let out = try output(out, "out_json")
        let (devices, error) = Backends.deviceList()
        out.pointee = try jsonString(["devices": devices, "openCLError": error ?? NSNull() as Any])
    }
}

@_cdecl("xai_methods_json")
public func xai_methods_json(_ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    call {
        let out = try output(out, "out_json")
        out.pointee = try cString(MethodRegistry.json())
    }
}

// MARK: Models

@_cdecl("xai_model_open")
public func xai_model_open(_ spec: UnsafePointer<CChar>?, _ device: UnsafePointer<CChar>?,
                           _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    call {
        let spec = try text(spec, "path_or_zoo")
        let device = try Device(parsing: device.map { String(cString: $0) } ?? "cpu")
        let out = try output(out, "out_model")
        out.pointee = retained(try ModelHandle(spec: spec, device: device))
    }
}

@_cdecl("xai_model_open2")
public func xai_model_open2(_ spec: UnsafePointer<CChar>?, _ device: UnsafePointer<CChar>?, _ options: UnsafePointer<CChar>?,
                            _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    call {
        let spec = try text(spec, "path_or_zoo")
        let device = try Device(parsing: device.map { String(cString: $0) } ?? "cpu")
        let out = try output(out, "out_model")
        var precision = Precision.exact
        if let options {
            guard let o = try? JSONSerialization.jsonObject(with: Data(String(cString: options).utf8)) as? [String: Any] else {
                throw argument("options_json", "not a JSON object")
            }
            if let unknown = o.keys.sorted().first(where: { $0 != "precision" }) { throw argument(unknown, "not a model option (precision)") }
            if let p = o["precision"] {
                guard let text = p as? String else { throw argument("precision", "must be a string: exact, fp32, fast, tf32 or 3xtf32") }
                precision = try Precision(parsing: text)
            }
        }
        out.pointee = retained(try ModelHandle(spec: spec, device: device, precision: precision))
    }
}

@_cdecl("xai_model_free")
public func xai_model_free(_ model: OpaquePointer?) {
    guard let model else { return }
    Unmanaged<ModelHandle>.fromOpaque(UnsafeRawPointer(model)).release()
}

@_cdecl("xai_model_info_json")
public func xai_model_info_json(_ model: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    call {
        let m = try handle(model, "model", as: ModelHandle.self)
        let out = try output(out, "out_json")
        m.lock.lock(); defer { m.lock.unlock() }
        out.pointee = try jsonString(m.session.info)
    }
}

@_cdecl("xai_predict")
public func xai_predict(_ model: OpaquePointer?, _ input: UnsafePointer<Float>?, _ shape: UnsafePointer<Int64>?, _ rank: Int,
                        _ logits: UnsafeMutablePointer<Float>?, _ logitsLength: Int) -> Int32 {
    call {
        let m = try handle(model, "model", as: ModelHandle.self)
        m.lock.lock(); defer { m.lock.unlock() }
        let x = try m.batch(input, shape, rank)
        let out = try output(logits, "logits")
        _ = try aligned(UnsafePointer(out), "logits")
        let n = x.shape[0]
        guard logitsLength == n * m.classes else {
            throw argument("logits_len", "must be N x classes = \(n) x \(m.classes) = \(n * m.classes)", value: "\(logitsLength)")
        }
        let be = m.explained.backend
        let result = try m.explained.logits(try be.upload(x))
        guard result.scalars.count == logitsLength else {
            throw XAIError.shapeMismatch(op: "logits", expected: "\(logitsLength) values", got: [result.shape])
        }
        result.scalars.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: logitsLength) }
    }
}

// MARK: Explanations

/// The `xai_progress_fn` as the methods' progress: a non-zero return cancels.
private func progressCallback(_ fn: (@convention(c) (Int64, Int64, UnsafeMutableRawPointer?) -> Int32)?,
                              _ user: UnsafeMutableRawPointer?, _ method: String) -> (@Sendable (Int, Int) throws -> Void)? {
    guard let fn else { return nil }
    nonisolated(unsafe) let user = user
    return { done, total in
        if fn(Int64(done), Int64(total), user) != 0 { throw XAIError.cancelled(operation: method) }
    }
}

@_cdecl("xai_explain")
public func xai_explain(_ model: OpaquePointer?, _ method: UnsafePointer<CChar>?, _ input: UnsafePointer<Float>?,
                        _ shape: UnsafePointer<Int64>?, _ rank: Int, _ targets: UnsafePointer<Int64>?, _ targetCount: Int,
                        _ knobs: UnsafePointer<CChar>?,
                        _ progress: (@convention(c) (Int64, Int64, UnsafeMutableRawPointer?) -> Int32)?,
                        _ user: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    call {
        let m = try handle(model, "model", as: ModelHandle.self)
        let name = try text(method, "method")
        let out = try output(out, "out_result")
        m.lock.lock(); defer { m.lock.unlock() }
        let x = try m.batch(input, shape, rank)
        let options = xai_explain_options(targets: targets, n_targets: targetCount, knobs_json: knobs, baseline: nil, feature_mask: nil,
                                          progress: progress, user: user)
        out.pointee = retained(try explain(m, name, x, options))
    }
}

@_cdecl("xai_explain2")
public func xai_explain2(_ model: OpaquePointer?, _ method: UnsafePointer<CChar>?, _ input: UnsafePointer<xai_tensor_view>?,
                         _ options: UnsafePointer<xai_explain_options>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    call {
        let m = try handle(model, "model", as: ModelHandle.self)
        let name = try text(method, "method")
        let out = try output(out, "out_result")
        guard let input = input?.pointee else { throw argument("input", "is NULL") }
        m.lock.lock(); defer { m.lock.unlock() }
        let x = try m.batch(input.data, input.shape, input.rank)
        out.pointee = retained(try explain(m, name, x, options?.pointee ?? xai_explain_options()))
    }
}

/// The explanation target the caller's `targets` name for a batch of `n`.
private func target(_ options: xai_explain_options, n: Int, classes: Int) throws -> Target {
    switch options.n_targets {
    case 0: return .predicted
    case 1, n:
        guard let targets = try aligned(options.targets, "targets") else { throw argument("targets", "is NULL but n_targets is \(options.n_targets)") }
        let list = (0..<options.n_targets).map { Int(clamping: targets[$0]) }
        if let bad = list.first(where: { !(0..<classes).contains($0) }) {
            throw argument("targets", "class \(bad) is not in 0..<\(classes)", value: "\(bad)")
        }
        return options.n_targets == 1 ? .index(list[0]) : .perImage(list)
    default:
        throw argument("n_targets", "must be 0 (top-1), 1 (one class for every image) or N = \(n) (one per image)", value: "\(options.n_targets)")
    }
}

/// A method as the caller's options configure it: knobs, and the baseline and superpixels given as tensors.
private func configuredMethod(_ m: ModelHandle, _ name: String, _ options: xai_explain_options, n: Int) throws -> (ConfiguredMethod, MethodInputs) {
    let inputs = try methodInputs(m, options, n: n)
    let report = progressCallback(options.progress, options.user, name)
    try report?(0, 1)
    let configured = try m.session.method(name, configuration: inputs.configuration, progress: report, baseline: inputs.baseline, segmentation: inputs.segmentation)
    return (configured, inputs)
}

/// The method knobs, baseline and superpixels of the caller's options.
private func methodInputs(_ m: ModelHandle, _ options: xai_explain_options, n: Int) throws -> MethodInputs {
    let (h, w) = (m.height, m.width)
    return MethodInputs(
        configuration: try options.knobs_json.map { try MethodConfiguration.parse(json: Data(String(cString: $0).utf8)) } ?? MethodConfiguration(),
        baseline: try m.tensor(options.baseline, "baseline", allowed: [[3, h, w], [-1, 3, h, w]]).map { Baseline.tensor($0) },
        segmentation: try m.tensor(options.feature_mask, "feature_mask", allowed: [[h, w], [n, h, w]]).map { Segmentation.labels($0) })
}

/// The knobs and tensors a method was given, for the metrics that run it again.
private struct MethodInputs {
    let configuration: MethodConfiguration
    let baseline: Baseline?
    let segmentation: Segmentation?
}

private func explain(_ m: ModelHandle, _ name: String, _ x: Tensor, _ options: xai_explain_options) throws -> ResultHandle {
    let n = x.shape[0]
    let target = try target(options, n: n, classes: m.classes)
    let (configured, _) = try configuredMethod(m, name, options, n: n)
    let started = Date()
    let a = try configured.method.attribute(x, target: target, baseline: configured.baseline)
    let seconds = Date().timeIntervalSince(started)
    _ = try progressCallback(options.progress, options.user, name).map { try $0(1, 1) }
    var tensors = ["map": a.map]
    if let raw = a.raw { tensors["raw"] = raw }
    if let segments = a.segments { tensors["segments"] = segments }
    let meta = ExplanationMeta(method: name, device: m.explained.backend.name, targets: a.targets,
                               scores: a.scores.map { $0.isFinite ? Double($0) : nil },
                               labels: a.targets.map { m.session.label($0) },
                               diagnostics: a.diagnostics.mapValues { $0.map { $0.isFinite ? $0 : nil } },
                               parameters: configured.parameters, nonFiniteMapValues: a.map.nonFiniteCount, seconds: seconds,
                               provenance: m.session.provenance)
    return ResultHandle(names: ["map", "raw", "segments"], tensors: tensors, meta: try encoder.encode(meta))
}

// MARK: Metrics

@_cdecl("xai_metrics_json")
public func xai_metrics_json(_ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    call {
        let out = try output(out, "out_json")
        out.pointee = try cString(MetricRegistry.json())
    }
}

/// What `xai_result_meta_json` says about an evaluation. Values JSON cannot hold are null.
private struct EvaluationMeta: Encodable {
    struct Metric: Encodable {
        let name: String
        let direction: String
        let scores: [Double?]
        let mean: Double?
        let standardError: Double?
        let count: Int
        let settings: [String: String]
        let curves: [[Double?]]?
        let seconds: Double

        // Every documented key is present: an undefined mean or standard error (no finite score,
        // or one) and a metric without curves are null, not left out.
        enum CodingKeys: String, CodingKey { case name, direction, scores, mean, standardError, count, settings, curves, seconds }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(direction, forKey: .direction)
            try c.encode(scores, forKey: .scores)
            try c.encode(mean, forKey: .mean)
            try c.encode(standardError, forKey: .standardError)
            try c.encode(count, forKey: .count)
            try c.encode(settings, forKey: .settings)
            try c.encode(curves, forKey: .curves)
            try c.encode(seconds, forKey: .seconds)
        }
    }
    let metrics: [Metric]
    let method: String?
    let targets: [Int]
    let device: String
    let provenance: Provenance
}

@_cdecl("xai_evaluate")
public func xai_evaluate(_ model: OpaquePointer?, _ metrics: UnsafePointer<CChar>?, _ input: UnsafePointer<xai_tensor_view>?,
                         _ options: UnsafePointer<xai_evaluate_options>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    call {
        let m = try handle(model, "model", as: ModelHandle.self)
        let list = try text(metrics, "metrics")
        let out = try output(out, "out_result")
        guard let input = input?.pointee else { throw argument("input", "is NULL") }
        let o = options?.pointee ?? xai_evaluate_options()
        m.lock.lock(); defer { m.lock.unlock() }
        let x = try m.batch(input.data, input.shape, input.rank)
        let (n, h, w) = (x.shape[0], m.height, m.width)
        let method = try o.method.map { try MethodRegistry.spec(String(cString: $0)).name }
        let masks = try m.tensor(o.masks, "masks", allowed: [[n, h, w]])
        let names = try MetricRegistry.expand(list, masks: masks != nil)
        let metricConfiguration = try o.metric_knobs_json.map { try MetricConfiguration.parse(json: Data(String(cString: $0).utf8)) } ?? MetricConfiguration()
        try MetricRegistry.validate(names, configuration: metricConfiguration, pixels: h * w)
        // The maps given, or the method's now; the classes they explain.
        let maps: Tensor, targets: [Int]
        var inputs = MethodInputs(configuration: MethodConfiguration(), baseline: nil, segmentation: nil)
        let needsMethod = try names.contains { try MetricRegistry.spec($0).reexplains }
        if let given = try m.tensor(o.maps, "maps", allowed: [[n, h, w]]) {
            maps = given
            targets = try m.explained.prepare(x, target: try target(o.explain, n: n, classes: m.classes)).targets
            if let method, needsMethod {
                inputs = try configuredMethod(m, method, o.explain, n: n).1
            } else if names.contains("irof") {
                // IROF reads the superpixels (the feature mask, or the segmentation knobs) without a method.
                inputs = try methodInputs(m, o.explain, n: n)
            }
        } else {
            guard let method else { throw argument("maps", "is NULL and no method is named to make them") }
            let (configured, given) = try configuredMethod(m, method, o.explain, n: n)
            let a = try configured.method.attribute(x, target: try target(o.explain, n: n, classes: m.classes), baseline: configured.baseline)
            (maps, targets, inputs) = (try a.map.reshaped([n, h, w]), a.targets, given)
        }
        let report = progressCallback(o.explain.progress, o.explain.user, "evaluate")
        // The header's contract: (0, 1) before the work starts. With the maps given no method has
        // reported yet, and the metrics' own count starts at (0, metrics).
        if o.maps != nil { try report?(0, 1) }
        let metricInput = MetricInput(session: m.session, images: x, maps: maps, targets: targets, masks: masks, method: method,
                                      methodConfiguration: inputs.configuration, baseline: inputs.baseline, segmentation: inputs.segmentation)
        var done = 0
        let outcomes = try MetricRegistry.evaluate(names, input: metricInput, configuration: metricConfiguration) { _ in
            try report?(done, names.count)
            done += 1
        }
        try report?(1, 1)
        func finite(_ v: Double) -> Double? { v.isFinite ? v : nil }
        let scores = Tensor(unchecked: Shape([names.count, n]), outcomes.flatMap { $0.outcome.result.scores.map(Float.init) })
        let meta = EvaluationMeta(metrics: outcomes.map { name, o in
            let r = o.result
            return EvaluationMeta.Metric(name: name, direction: r.direction.rawValue, scores: r.scores.map(finite), mean: finite(r.mean),
                                         standardError: finite(r.standardError), count: r.count, settings: r.settings,
                                         curves: r.curves?.map { $0.map(finite) }, seconds: o.seconds)
        }, method: method, targets: targets, device: m.explained.backend.name, provenance: m.session.provenance)
        out.pointee = retained(ResultHandle(names: ["scores", "map"], tensors: ["scores": scores, "map": maps], meta: try encoder.encode(meta)))
    }
}

@_cdecl("xai_preprocess")
public func xai_preprocess(_ model: OpaquePointer?, _ paths: UnsafePointer<UnsafePointer<CChar>?>?, _ count: Int,
                           _ options: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    call {
        let m = try handle(model, "model", as: ModelHandle.self)
        let out = try output(out, "out_result")
        guard let paths else { throw argument("paths", "is NULL") }
        guard count >= 1 else { throw argument("n_paths", "name at least one file", value: "\(count)") }
        var preprocessing = m.session.preprocessing
        if let options {
            guard let object = try? JSONSerialization.jsonObject(with: Data(String(cString: options).utf8)) else {
                throw argument("options_json", "is not valid JSON")
            }
            guard let o = object as? [String: Any] else { throw argument("options_json", "not a JSON object") }
            if let unknown = o.keys.sorted().first(where: { !["preset", "resize"].contains($0) }) {
                throw argument(unknown, "not a preprocessing option (preset, resize)")
            }
            let preset = o["preset"].map { $0 as? String }
            let resize = o["resize"].map { ($0 as? NSNumber)?.intValue }
            if preset == .some(nil) { throw argument("preset", "must be a string") }
            if resize == .some(nil) { throw argument("resize", "must be an integer") }
            preprocessing = try Preprocessing.resolve(preset: preset ?? nil, resize: resize ?? nil, sidecar: preset == nil ? m.session.sidecar : nil)
            if preset == nil, resize == nil { preprocessing = m.session.preprocessing }
        }
        var images: [PreparedImage] = []
        for i in 0..<count {
            let path = try text(paths[i], "paths[\(i)]")
            images += try preprocessing.prepare(path, height: m.height, width: m.width)
        }
        let plane = 3 * m.height * m.width
        let shape = try Shape(validating: [images.count, 3, m.height, m.width], what: "preprocessed batch")
        var scalars: [Float] = []
        scalars.reserveCapacity(shape.count)
        for image in images { scalars += image.tensor.scalars.prefix(plane) }
        let meta: [String: Any] = ["sources": images.map(\.source), "stems": images.map(\.stem),
                                   "preprocessing": ["mean": preprocessing.mean, "std": preprocessing.std, "resize": preprocessing.resize ?? NSNull() as Any]]
        out.pointee = retained(try makeResult(names: ["input"], tensors: ["input": Tensor(unchecked: shape, scalars)], meta: meta))
    }
}

// MARK: Results

@_cdecl("xai_result_tensor")
public func xai_result_tensor(_ result: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ data: UnsafeMutablePointer<UnsafePointer<Float>?>?,
                              _ shape: UnsafeMutablePointer<UnsafePointer<Int64>?>?, _ rank: UnsafeMutablePointer<Int>?) -> Int32 {
    call {
        let r = try handle(result, "result", as: ResultHandle.self)
        let name = try text(name, "name")
        let (data, shape, rank) = (try output(data, "data"), try output(shape, "shape"), try output(rank, "rank"))
        guard r.names.contains(name) else {
            throw argument("name", "this result holds \(r.names.sorted().joined(separator: ", "))", value: name)
        }
        if let t = r.tensors[name] {
            data.pointee = UnsafePointer(t.data.baseAddress)
            shape.pointee = UnsafePointer(t.shape.baseAddress)
            rank.pointee = t.rank
        } else {
            data.pointee = nil
            shape.pointee = nil
            rank.pointee = 0
        }
    }
}

@_cdecl("xai_result_meta_json")
public func xai_result_meta_json(_ result: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    call {
        let r = try handle(result, "result", as: ResultHandle.self)
        let out = try output(out, "out_json")
        out.pointee = try cString(r.meta)
    }
}

@_cdecl("xai_result_free")
public func xai_result_free(_ result: OpaquePointer?) {
    guard let result else { return }
    Unmanaged<ResultHandle>.fromOpaque(UnsafeRawPointer(result)).release()
}

// MARK: Overlays

@_cdecl("xai_overlay")
public func xai_overlay(_ rgb: UnsafePointer<UInt8>?, _ height: Int64, _ width: Int64, _ map: UnsafePointer<Float>?,
                        _ mapHeight: Int64, _ mapWidth: Int64, _ style: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<UInt8>?) -> Int32 {
    call {
        guard let rgb else { throw argument("rgb", "is NULL") }
        guard let map = try aligned(map, "map") else { throw argument("map", "is NULL") }
        let out = try output(out, "out")
        for (name, v) in [("height", height), ("width", width), ("map_height", mapHeight), ("map_width", mapWidth)] where !(1...65_536).contains(v) {
            throw argument(name, "must be between 1 and 65536", value: "\(v)")
        }
        let (h, w, mh, mw) = (Int(height), Int(width), Int(mapHeight), Int(mapWidth))
        guard h * w <= Limits.imagePixels, mh * mw <= Limits.imagePixels else {
            throw XAIError.tooLarge(what: "overlay \(h)x\(w), map \(mh)x\(mw)", bytes: 4 * max(h * w, mh * mw), limit: 4 * Limits.imagePixels)
        }
        let styleValue = try style.map { try heatmapStyle(Data(String(cString: $0).utf8), name: "style_json", keys: ["colormap", "sign", "alpha", "percentile", "detail"]) }
            ?? HeatmapStyle()
        let picture = try RGBImage(width: w, height: h, pixels: Array(UnsafeBufferPointer(start: rgb, count: h * w * 3)))
        let drawn = try styleValue.overlay(picture, map: Array(UnsafeBufferPointer(start: map, count: mh * mw)), mapWidth: mw, mapHeight: mh,
                                           placement: .init(left: 0, top: 0, width: Double(w), height: Double(h)))
        drawn.pixels.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: h * w * 3) }
    }
}

/// A heatmap style from JSON: {"colormap", "sign", "alpha", "percentile", "detail"}, each optional,
/// only the `keys` allowed.
private func heatmapStyle(_ text: Data, name: String, keys allowed: [String]) throws -> HeatmapStyle {
    guard let keys = (try? JSONSerialization.jsonObject(with: text)) as? [String: Any] else {
        throw argument(name, "not a JSON object")
    }
    if let unknown = keys.keys.sorted().first(where: { !allowed.contains($0) }) {
        throw argument(unknown, "not a style option (\(allowed.joined(separator: ", ")))")
    }
    struct Style: Decodable {
        var colormap: String?, sign: String?, detail: String?
        var alpha: Double?, percentile: Double?
    }
    let s: Style
    do { s = try JSONDecoder().decode(Style.self, from: text) } catch let DecodingError.typeMismatch(_, context) {
        throw argument(context.codingPath.last?.stringValue ?? name, "wrong type: \(context.debugDescription)")
    }
    let colormap = try s.colormap.map { c in
        guard let m = Colormap(rawValue: c) else {
            throw argument("colormap", "none of \(Colormap.allCases.map(\.rawValue).joined(separator: ", "))", value: c)
        }
        return m
    }
    guard let sign = SignMode(rawValue: s.sign ?? "auto") else {
        throw argument("sign", "none of \(SignMode.allCases.map(\.rawValue).joined(separator: ", "))", value: s.sign ?? "")
    }
    guard let detail = MapDetail(rawValue: s.detail ?? "region") else {
        throw argument("detail", "none of \(MapDetail.allCases.map(\.rawValue).joined(separator: ", "))", value: s.detail ?? "")
    }
    if let alpha = s.alpha, !(0...1).contains(alpha) { throw argument("alpha", "must be between 0 and 1", value: "\(alpha)") }
    if let p = s.percentile, !(0...100).contains(p) { throw argument("percentile", "must be between 0 and 100", value: "\(p)") }
    return HeatmapStyle(colormap: colormap, sign: sign, percentile: s.percentile ?? 99, alpha: s.alpha ?? 0.5, detail: detail)
}

// MARK: Runs over files (version 3)

/// A JSON object argument.
private func jsonObject(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> [String: Any] {
    let text = try text(pointer, name)
    guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) else { throw argument(name, "is not valid JSON") }
    guard let o = object as? [String: Any] else { throw argument(name, "not a JSON object") }
    return o
}

/// A request's value of one type, `nil` where absent or null.
private func value<T>(_ o: [String: Any], _ key: String, _ what: String) throws -> T? {
    guard let v = o[key], !(v is NSNull) else { return nil }
    guard let typed = v as? T else { throw argument(key, "must be \(what)") }
    return typed
}

/// A request's boolean (JSON true/false, not a number).
private func flag(_ o: [String: Any], _ key: String) throws -> Bool? {
    guard let v = o[key], !(v is NSNull) else { return nil }
    guard let n = v as? NSNumber, String(cString: n.objCType) == "c" else { throw argument(key, "must be true or false") }
    return n.boolValue
}

/// A request's integer (a JSON number without a fraction).
private func integer(_ o: [String: Any], _ key: String) throws -> Int? {
    guard let v = o[key], !(v is NSNull) else { return nil }
    guard let n = v as? NSNumber, String(cString: n.objCType) != "c", let i = Int(exactly: n.doubleValue) else { throw argument(key, "must be an integer") }
    return i
}

/// A list of strings, or one string of comma-separated values.
private func list(_ o: [String: Any], _ key: String) throws -> [String]? {
    if let one: String = try? value(o, key, "") { return one.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
    return try value(o, key, "a list of strings")
}

/// What every request over files holds: the output folder, the files (named by the caller, or
/// inputs to list), the methods, their knobs and the target.
private struct FilesRequest {
    static let keys = ["files", "stems", "inputs", "shard", "methods", "out", "target", "knobs"]

    var out: String
    var methods: String
    var inputs: [String]
    var shard: String?
    var files: [(path: String, stem: String)]?
    var target = Target.predicted
    var configuration = MethodConfiguration()

    init(_ o: [String: Any], keys specific: [String], classes: Int) throws {
        let allowed = Self.keys + specific
        if let unknown = o.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw argument(unknown, "not a request key (\(allowed.joined(separator: ", ")))")
        }
        guard let folder: String = try value(o, "out", "a string (the output folder)"), !folder.isEmpty else {
            throw argument("out", "is missing (the output folder)")
        }
        out = folder
        methods = try list(o, "methods")?.joined(separator: ",") ?? "gradcam"
        inputs = try list(o, "inputs") ?? []
        let files: [String]? = try value(o, "files", "a list of paths")
        switch (files, o["inputs"].map { !($0 is NSNull) } ?? false) {
        case (nil, false): throw argument("files", "is missing: give \"files\" (with \"stems\") or \"inputs\"")
        case (.some, true): throw argument("inputs", "cannot be given with \"files\"")
        default: break
        }
        shard = try value(o, "shard", "a string i/n")
        if let files {
            let stems: [String] = try value(o, "stems", "a list of strings") ?? outputStems(files)
            guard stems.count == files.count else {
                throw argument("stems", "must name one folder per file (\(files.count))", value: "\(stems.count) stems")
            }
            if let bad = stems.first(where: { $0.isEmpty || $0 == "." || $0 == ".." || $0.contains("/") || $0.contains("\u{0}") }) {
                throw argument("stems", "each must be a folder name inside out (not empty, no \"/\", not . or ..)", value: bad)
            }
            guard Set(stems).count == stems.count else { throw argument("stems", "must be distinct") }
            if shard != nil { throw argument("shard", "applies to \"inputs\", not to \"files\"") }
            self.files = Array(zip(files, stems)).map { (path: $0.0, stem: $0.1) }
        }
        if let t = o["target"], !(t is NSNull) {
            if let text = t as? String, text == "top1" {
                target = .predicted
            } else {
                guard let i = try? integer(o, "target"), (0..<classes).contains(i) else {
                    throw argument("target", "must be \"top1\" or a class in 0..<\(classes)", value: "\(t)")
                }
                target = .index(i)
            }
        }
        if let knobs: [String: Any] = try value(o, "knobs", "a JSON object of knobs") { configuration = try MethodConfiguration.parse(knobs) }
    }
}

/// Runs a job over files with a caller's progress callback: (0, 1) first, then whatever the job
/// reports; a non-zero return cancels.
private func reporting(_ progress: (@convention(c) (Int64, Int64, UnsafeMutableRawPointer?) -> Int32)?, _ user: UnsafeMutableRawPointer?,
                       _ operation: String) throws -> ((Int, Int) -> Bool)? {
    guard let progress else { return nil }
    nonisolated(unsafe) let user = user
    if progress(0, 1, user) != 0 { throw XAIError.cancelled(operation: operation) }
    return { done, total in progress(Int64(done), Int64(total), user) != 0 }
}

/// What the calls over files share: the handle, the request (the common keys and `keys`), the
/// out-parameter, the handle's lock. `body` runs the job and returns the summary JSON.
private func overFiles(_ model: OpaquePointer?, _ request: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                       keys: [String], _ body: (ModelHandle, [String: Any], FilesRequest) throws -> [String: Any]) -> Int32 {
    call {
        let m = try handle(model, "model", as: ModelHandle.self)
        let o = try jsonObject(request, "request_json")
        let out = try output(out, "out_summary_json")
        let r = try FilesRequest(o, keys: keys, classes: m.classes)
        m.lock.lock(); defer { m.lock.unlock() }
        out.pointee = try jsonString(try body(m, o, r))
    }
}

@_cdecl("xai_explain_files")
public func xai_explain_files(_ model: OpaquePointer?, _ request: UnsafePointer<CChar>?,
                              _ progress: (@convention(c) (Int64, Int64, UnsafeMutableRawPointer?) -> Int32)?,
                              _ user: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    overFiles(model, request, out, keys: ["results", "save", "overwrite", "imageBatch", "style", "modelName"]) { m, o, r in
        var job = ExplainJob(model: try value(o, "modelName", "a string") ?? m.spec, inputs: r.inputs, methods: r.methods, out: r.out)
        (job.files, job.shard, job.target, job.configuration) = (r.files, r.shard, r.target, r.configuration)
        job.resultsPath = try value(o, "results", "a string (a path)")
        if let save = try list(o, "save") { job.saving = Set(save) }
        job.overwrite = try flag(o, "overwrite") ?? false
        if let batch = try integer(o, "imageBatch") { job.imageBatch = batch }
        if let style: [String: Any] = try value(o, "style", "a JSON object") {
            job.style = try heatmapStyle(try JSONSerialization.data(withJSONObject: style), name: "style", keys: ["colormap", "sign", "alpha", "percentile"])
        }
        (job.quiet, job.printsErrors, job.session) = (true, false, m.session)
        job.onProgress = try reporting(progress, user, "explaining files")
        let summary = try job.run()
        return ["written": summary.written, "skipped": summary.skipped, "failures": summary.failures, "warnings": summary.warnings,
                "seconds": summary.seconds, "report": summary.report ?? NSNull() as Any]
    }
}

@_cdecl("xai_evaluate_files")
public func xai_evaluate_files(_ model: OpaquePointer?, _ request: UnsafePointer<CChar>?,
                               _ progress: (@convention(c) (Int64, Int64, UnsafeMutableRawPointer?) -> Int32)?,
                               _ user: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    overFiles(model, request, out, keys: ["metrics", "masks", "metricKnobs", "results", "report"]) { m, o, r in
        if r.shard != nil { throw argument("shard", "applies to xai_explain_files and xai_list_inputs") }
        let metrics = try list(o, "metrics")?.joined(separator: ",") ?? "deletion,insertion"
        var job = EvaluateJob(model: m.spec, inputs: r.inputs, methods: r.methods, metrics: metrics, masks: try value(o, "masks", "a string (a folder)"),
                              out: r.out)
        (job.files, job.target, job.configuration) = (r.files, r.target, r.configuration)
        if let knobs: [String: Any] = try value(o, "metricKnobs", "a JSON object of metric knobs") {
            job.metricConfiguration = try MetricConfiguration.parse(knobs)
        }
        // The metrics that re-explain draw with the method's seed unless the caller set theirs.
        if (o["metricKnobs"] as? [String: Any])?["seed"] == nil { job.metricConfiguration.seed = job.configuration.seed }
        job.metricsPath = try value(o, "results", "a string (a path)")
        job.writesReport = try flag(o, "report") ?? true
        (job.quiet, job.printsErrors, job.session) = (true, false, m.session)
        job.onProgress = try reporting(progress, user, "scoring files")
        let summary = try job.run()
        let scores: [[String: Any]] = summary.scores.map { ["method": $0.method, "metric": $0.metric, "scores": $0.values.map { $0.isFinite ? $0 : NSNull() as Any }] }
        return ["scores": scores, "failures": summary.failures, "report": summary.report ?? NSNull() as Any]
    }
}

@_cdecl("xai_list_inputs")
public func xai_list_inputs(_ inputs: UnsafePointer<UnsafePointer<CChar>?>?, _ count: Int, _ shard: UnsafePointer<CChar>?,
                            _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    call {
        guard let inputs else { throw argument("inputs", "is NULL") }
        guard count >= 1 else { throw argument("n_inputs", "name at least one file or folder", value: "\(count)") }
        let out = try output(out, "out_json")
        let arguments = try (0..<count).map { try text(inputs[$0], "inputs[\($0)]") }
        let files = try collectInputs(arguments, shard: shard.map { String(cString: $0) })
        out.pointee = try jsonString(["files": files, "stems": outputStems(files)])
    }
}

@_cdecl("xai_write_report")
public func xai_write_report(_ folder: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    call {
        let folder = try text(folder, "folder")
        let out = try output(out, "out_path")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw XAIError.file(path: folder, reason: "no such folder")
        }
        let path = try writeReport(folder: folder, resultsPath: (folder as NSString).appendingPathComponent("results.jsonl"))
        guard let s = strdup(path) else { throw XAIError.outOfMemory(op: "string", bytes: path.utf8.count, device: "host") }
        out.pointee = s
    }
}
