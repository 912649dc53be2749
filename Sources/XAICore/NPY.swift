import Foundation

/// Reads and writes NumPy `.npy` files (format 1.0-3.0, C order, little-endian). Arrays of float32,
/// float64 and integer types are read as float32; writing is always float32. Values are read as
/// they are (NaN and infinity included); callers that need finite values check.
public enum NPY {
    /// Reads a `.npy` file.
    /// - Throws: ``XAIError/file(path:reason:)`` for a missing, truncated or malformed file (the
    ///   reason says which), ``XAIError/inFile(path:underlying:)`` around a shape that is negative or too large.
    public static func read(_ path: String) throws -> Tensor {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw XAIError.file(path: path, reason: FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        return try decode(data, path: path)
    }

    /// Decodes the bytes of a `.npy` file; `path` names it in errors.
    public static func decode(_ data: Data, path: String = "<memory>") throws -> Tensor {
        let bytes = [UInt8](data)
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else {
            throw XAIError.file(path: path, reason: "not a .npy file (bad magic)")
        }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        if major == 1 {
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        } else {
            guard bytes.count >= 12 else { throw XAIError.file(path: path, reason: "truncated .npy header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        }
        guard bytes.count >= headerStart + headerLength else { throw XAIError.file(path: path, reason: "truncated .npy header") }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        func field(_ key: String) -> String? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return String(header[r.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        guard let descr = field("descr").flatMap({ $0.split(separator: "'").first.map(String.init) }) else {
            throw XAIError.file(path: path, reason: "no dtype in .npy header")
        }
        if let order = field("fortran_order"), order.hasPrefix("True") {
            throw XAIError.file(path: path, reason: "Fortran-ordered arrays are not supported; save with np.ascontiguousarray")
        }
        guard let shapeText = field("shape"), let open = shapeText.firstIndex(of: "("),
              let close = shapeText[open...].firstIndex(of: ")") else {
            throw XAIError.file(path: path, reason: "no shape in .npy header")
        }
        var dims: [Int] = []
        for part in shapeText[shapeText.index(after: open)..<close].split(separator: ",", omittingEmptySubsequences: false) {
            let text = part.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            guard let d = Int(text) else { throw XAIError.file(path: path, reason: "bad extent '\(text)' in the .npy shape") }
            dims.append(d)
        }
        let shape: Shape
        do { shape = try Shape(validating: dims, what: "the .npy array") } catch let e as XAIError { throw e.inFile(path) }
        let body = bytes[(headerStart + headerLength)...]
        func values<T>(_ type: T.Type, _ convert: (T) -> Float) throws -> [Float] {
            let size = MemoryLayout<T>.size
            // The shape is validated, so shape.count * 8 cannot overflow.
            guard body.count >= shape.count * size else {
                throw XAIError.file(path: path, reason: "truncated .npy data: \(body.count) bytes for shape \(shape) of \(descr)")
            }
            return body.withUnsafeBytes { buf in (0..<shape.count).map { convert(buf.loadUnaligned(fromByteOffset: $0 * size, as: T.self)) } }
        }
        let scalars: [Float]
        switch descr {
        case "<f4", "|f4": scalars = try values(Float.self) { $0 }
        case "<f8": scalars = try values(Double.self) { Float($0) }
        case "<i8": scalars = try values(Int64.self) { Float($0) }
        case "<i4": scalars = try values(Int32.self) { Float($0) }
        case "|u1": scalars = try values(UInt8.self) { Float($0) }
        case "|i1": scalars = try values(Int8.self) { Float($0) }
        case "<i2": scalars = try values(Int16.self) { Float($0) }
        case "|b1": scalars = try values(UInt8.self) { Float($0) }
        default: throw XAIError.file(path: path, reason: "unsupported .npy dtype \(descr) (float32, float64 and integers are read)")
        }
        return try Tensor(shape: shape, scalars: scalars)
    }

    /// Writes a float32 `.npy` file.
    public static func write(_ tensor: Tensor, to path: String) throws {
        let shapeText = tensor.shape.rank == 1 ? "(\(tensor.shape[0]),)" : "(" + tensor.shape.dims.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)])
        data.append(contentsOf: Array(header.utf8))
        tensor.scalars.withUnsafeBytes { data.append(contentsOf: $0) }
        try FileSystem.write(data, to: path)
    }
}
