import CPNG
import CTurboJPEG
import Foundation
import XAICore

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (`pixels[(y * width + x) * 3 + c]`).
public struct RGBImage: Sendable, Equatable {
    public let width: Int, height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "RGBImage: \(pixels.count) bytes for \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Reads a PNG (8 or 16 bit; gray, RGB, RGBA or palette, through libpng) or a JPEG (through
    /// TurboJPEG), chosen by the file's signature, not its name. Alpha is dropped.
    public static func read(_ path: String) throws -> RGBImage {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw XAIError.file(path: path, reason: "cannot be read (missing or not a file)")
        }
        let bytes = [UInt8](data)
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return try readPNG(bytes, path: path) }
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return try readJPEG(bytes, path: path) }
        throw XAIError.file(path: path, reason: "not a PNG or JPEG image (unknown signature)")
    }

    static func message(_ image: png_image) -> String {
        withUnsafeBytes(of: image.message) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
    }

    static func readPNG(_ bytes: [UInt8], path: String) throws -> RGBImage {
        var image = png_image()
        image.version = xai_png_image_version()
        let ok = bytes.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard ok != 0 else { throw XAIError.file(path: path, reason: "corrupt PNG: \(message(image))") }
        defer { png_image_free(&image) }
        let (w, h) = (Int(image.width), Int(image.height))
        guard w > 0, h > 0, w * h <= 1 << 28 else { throw XAIError.file(path: path, reason: "PNG of \(w)x\(h) pixels is not supported") }
        // Read as RGBA and drop alpha (no compositing, as Pillow's convert("RGB")); 16-bit files
        // as 16-bit values (no gamma conversion), scaled to 8 bits.
        var rgb = [UInt8](repeating: 0, count: w * h * 3)
        if image.format & xai_png_flag_linear() != 0 {
            image.format = xai_png_format_rgba_linear()
            var wide = [UInt16](repeating: 0, count: w * h * 4)
            let done = wide.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
            guard done != 0 else { throw XAIError.file(path: path, reason: "corrupt PNG: \(message(image))") }
            for p in 0..<(w * h) { for c in 0..<3 { rgb[p * 3 + c] = UInt8((Double(wide[p * 4 + c]) * 255 / 65535).rounded()) } }
        } else {
            image.format = xai_png_format_rgba()
            var pixels = [UInt8](repeating: 0, count: w * h * 4)
            let done = pixels.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
            guard done != 0 else { throw XAIError.file(path: path, reason: "corrupt PNG: \(message(image))") }
            for p in 0..<(w * h) { for c in 0..<3 { rgb[p * 3 + c] = pixels[p * 4 + c] } }
        }
        return RGBImage(width: w, height: h, pixels: rgb)
    }

    static func readJPEG(_ bytes: [UInt8], path: String) throws -> RGBImage {
        guard let handle = tjInitDecompress() else { throw XAIError.file(path: path, reason: "TurboJPEG could not start") }
        defer { tjDestroy(handle) }
        var data = bytes
        var w: Int32 = 0, h: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        func failure() -> XAIError { XAIError.file(path: path, reason: "corrupt JPEG: \(String(cString: tjGetErrorStr2(handle)))") }
        guard tjDecompressHeader3(handle, &data, UInt(data.count), &w, &h, &subsampling, &colorspace) == 0 else { throw failure() }
        guard w > 0, h > 0, Int(w) * Int(h) <= 1 << 28 else { throw XAIError.file(path: path, reason: "JPEG of \(w)x\(h) pixels is not supported") }
        var pixels = [UInt8](repeating: 0, count: Int(w) * Int(h) * 3)
        let status = tjDecompress2(handle, &data, UInt(data.count), &pixels, w, 0, h, Int32(TJPF_RGB.rawValue), 0)
        // A warning (e.g. a truncated but decodable file) still yields pixels; an error does not.
        if status != 0 && tjGetErrorCode(handle) == Int32(TJERR_FATAL.rawValue) { throw failure() }
        return RGBImage(width: Int(w), height: Int(h), pixels: pixels)
    }

    /// Writes an 8-bit RGB PNG.
    public func writePNG(_ path: String) throws {
        var image = png_image()
        image.version = xai_png_image_version()
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = xai_png_format_rgb()
        let ok = pixels.withUnsafeBytes { png_image_write_to_file(&image, path, 0, $0.baseAddress, 0, nil) }
        guard ok != 0 else { throw XAIError.file(path: path, reason: "cannot write PNG: \(Self.message(image))") }
    }

    /// Resizes with a triangle (bilinear) filter whose support widens with the shrink factor, so
    /// shrinking averages every source pixel (antialiasing, as PIL and torchvision do).
    public func resized(width newWidth: Int, height newHeight: Int) -> RGBImage {
        if newWidth == width && newHeight == height { return self }
        func taps(_ out: Int, _ input: Int) -> [(start: Int, weights: [Double])] {
            let scale = Double(input) / Double(out)
            let support = max(scale, 1)
            return (0..<out).map { o in
                let centre = (Double(o) + 0.5) * scale
                let lo = max(Int((centre - support).rounded(.down)), 0), hi = min(Int((centre + support).rounded(.up)), input)
                var w = (lo..<hi).map { i in max(0, 1 - abs((Double(i) + 0.5 - centre) / support)) }
                let total = w.reduce(0, +)
                w = total > 0 ? w.map { $0 / total } : w
                return (lo, w)
            }
        }
        let columns = taps(newWidth, width), rows = taps(newHeight, height)
        var horizontal = [Double](repeating: 0, count: height * newWidth * 3)
        for y in 0..<height {
            for (x, t) in columns.enumerated() {
                for c in 0..<3 {
                    var acc = 0.0
                    for (k, w) in t.weights.enumerated() { acc += w * Double(pixels[(y * width + t.start + k) * 3 + c]) }
                    horizontal[(y * newWidth + x) * 3 + c] = acc
                }
            }
        }
        var out = [UInt8](repeating: 0, count: newHeight * newWidth * 3)
        for (y, t) in rows.enumerated() {
            for x in 0..<newWidth {
                for c in 0..<3 {
                    var acc = 0.0
                    for (k, w) in t.weights.enumerated() { acc += w * horizontal[((t.start + k) * newWidth + x) * 3 + c] }
                    out[(y * newWidth + x) * 3 + c] = UInt8(min(max(acc.rounded(), 0), 255))
                }
            }
        }
        return RGBImage(width: newWidth, height: newHeight, pixels: out)
    }

    /// The `width x height` box at `(left, top)`.
    public func cropped(left: Int, top: Int, width w: Int, height h: Int) -> RGBImage {
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            let src = ((top + y) * width + left) * 3
            out.replaceSubrange((y * w * 3)..<((y + 1) * w * 3), with: pixels[src..<(src + w * 3)])
        }
        return RGBImage(width: w, height: h, pixels: out)
    }
}
