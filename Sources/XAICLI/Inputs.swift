import Foundation
import XAI

/// Image files, folders (searched recursively) and text manifests (one path per line), in a
/// deterministic order; `--shard i/n` keeps every n-th from the i-th.
func collectInputs(_ arguments: [String], shard: String?) throws -> [String] {
    let imageExtensions: Set<String> = ["png", "jpg", "jpeg", "npy"]
    var files: [String] = []
    let fm = FileManager.default
    for argument in arguments {
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: argument, isDirectory: &isDirectory) else {
            throw XAIError.file(path: argument, reason: "no such file or folder")
        }
        let ext = (argument as NSString).pathExtension.lowercased()
        if isDirectory.boolValue {
            let found = (fm.enumerator(atPath: argument)?.allObjects as? [String] ?? [])
                .filter { imageExtensions.contains(($0 as NSString).pathExtension.lowercased()) }
                .sorted()
                .map { (argument as NSString).appendingPathComponent($0) }
            files += found
        } else if ext == "txt" {
            guard let text = try? String(contentsOfFile: argument, encoding: .utf8) else {
                throw XAIError.file(path: argument, reason: "cannot be read as a UTF-8 manifest")
            }
            let base = (argument as NSString).deletingLastPathComponent
            files += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }
                .map { $0.hasPrefix("/") ? $0 : (base as NSString).appendingPathComponent($0) }
        } else {
            files.append(argument)
        }
    }
    guard let shard else { return files }
    let parts = shard.split(separator: "/").compactMap { Int($0) }
    guard parts.count == 2, parts[1] >= 1, (0..<parts[1]).contains(parts[0]) else {
        throw XAIError.invalidArgument(parameter: "shard", value: shard, reason: "must be i/n with 0 <= i < n")
    }
    return files.enumerated().filter { $0.offset % parts[1] == parts[0] }.map(\.element)
}

/// One image to explain: the model input, the picture the overlays go on, and where the input
/// lies in it.
struct PreparedImage {
    let source: String
    let stem: String
    let tensor: Tensor
    let picture: RGBImage
    let placement: Preprocessing.Placement
}

/// Loads a PNG/JPEG (preprocessed) or a `.npy` tensor (`[3,H,W]` or `[N,3,H,W]`, already
/// preprocessed, finite) as one or more prepared images. Errors name the file.
func prepare(_ path: String, height: Int, width: Int, preprocessing: Preprocessing) throws -> [PreparedImage] {
    do {
        return try prepareUnnamed(path, height: height, width: width, preprocessing: preprocessing)
    } catch let e as XAIError {
        throw e.inFile(path)
    }
}

private func prepareUnnamed(_ path: String, height: Int, width: Int, preprocessing: Preprocessing) throws -> [PreparedImage] {
    let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
    if path.lowercased().hasSuffix(".npy") {
        let t = try NPY.read(path)
        let shape = t.shape.dims
        guard (shape.count == 3 || shape.count == 4), shape.suffix(3) == [3, height, width] else {
            throw XAIError.shapeMismatch(op: "input tensor", expected: "[3, \(height), \(width)] or [N, 3, \(height), \(width)] (the model's input)", got: [t.shape])
        }
        try t.requireFinite("input tensor")
        let n = shape.count == 4 ? shape[0] : 1
        let plane = height * width
        return try (0..<n).map { b in
            let values = Array(t.scalars[(b * 3 * plane)..<((b + 1) * 3 * plane)])
            // The picture: the tensor with the normalisation undone.
            var pixels = [UInt8](repeating: 0, count: plane * 3)
            for p in 0..<plane {
                for c in 0..<3 {
                    let v = (values[c * plane + p] * preprocessing.std[c] + preprocessing.mean[c]) * 255
                    pixels[p * 3 + c] = v.isFinite ? UInt8(min(max(v.rounded(), 0), 255)) : 0
                }
            }
            return PreparedImage(source: path, stem: n == 1 ? stem : "\(stem)_\(b)", tensor: Tensor(unchecked: [1, 3, height, width], values),
                                 picture: try RGBImage(width: width, height: height, pixels: pixels),
                                 placement: .init(left: 0, top: 0, width: Double(width), height: Double(height)))
        }
    }
    var picture = try RGBImage.read(path)
    let (tensor, _, placementFull) = try preprocessing.apply(picture, height: height, width: width)
    var placement = placementFull
    // Overlays go on the original picture, resized to 256-512 pixels on its longer side so small
    // inputs stay legible and large ones stay light.
    let longer = max(picture.width, picture.height)
    if longer > 512 || longer < 256 {
        let s = Double(longer > 512 ? 512 : 256) / Double(longer)
        picture = try picture.resized(width: max(1, Int(Double(picture.width) * s)), height: max(1, Int(Double(picture.height) * s)))
        placement = .init(left: placement.left * s, top: placement.top * s, width: placement.width * s, height: placement.height * s)
    }
    return [PreparedImage(source: path, stem: stem, tensor: tensor, picture: picture, placement: placement)]
}

/// A progress line on standard error, redrawn in place, only on a terminal.
final class ProgressLine: @unchecked Sendable {
    let enabled: Bool
    private let lock = NSLock()
    private var prefix = ""

    init(quiet: Bool) { enabled = !quiet && isatty(2) == 1 }

    /// Starts a new line of work: `prefix` stays in front of every update.
    func begin(_ prefix: String) {
        lock.lock()
        self.prefix = prefix
        lock.unlock()
        update("")
    }

    func update(_ text: String) {
        guard enabled else { return }
        lock.lock(); defer { lock.unlock() }
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + prefix + text).utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

/// "1:02:03" or "2:03".
func duration(_ seconds: Double) -> String {
    let s = Int(seconds.isFinite ? seconds.rounded() : 0)
    return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
}

/// This process's resident set size in KiB (Linux /proc; 0 elsewhere).
func residentKilobytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}
