import CPNG
import CTurboJPEG
import Foundation
import XAICore

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (`pixels[(y * width + x) * 3 + c]`).
public struct RGBImage: Sendable, Equatable {
    public let width: Int, height: Int
    public var pixels: [UInt8]

    /// - Throws: ``XAIError/shapeMismatch(op:expected:got:)`` unless `pixels` holds `width * height * 3` bytes.
    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        let (area, overflow) = width.multipliedReportingOverflow(by: height)
        guard width >= 0, height >= 0, !overflow, area <= Int.max / 3, area * 3 == pixels.count else {
            throw XAIError.shapeMismatch(op: "RGBImage", expected: "\(width)x\(height)x3 bytes", got: [Shape([pixels.count])])
        }
        self.init(unchecked: width, height, pixels)
    }

    /// An image from pixels known to fill `width x height` (no check).
    init(unchecked width: Int, _ height: Int, _ pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Pictures larger than this are refused before decoding (``Limits/imagePixels``).
    static func checkSize(_ w: Int, _ h: Int, path: String, format: String) throws {
        guard w > 0, h > 0 else { throw XAIError.file(path: path, reason: "\(format) of \(w)x\(h) pixels has no pixels") }
        guard w <= Limits.imagePixels / h else {
            throw XAIError.inFile(path: path, underlying: .tooLarge(what: "a \(format) of \(w)x\(h) pixels", bytes: w &* h &* 3, limit: Limits.imagePixels * 3))
        }
    }

    /// Reads a PNG (8 or 16 bit; gray, RGB, RGBA or palette, through libpng) or a JPEG (through
    /// TurboJPEG), chosen by the file's signature, not its name. Alpha is dropped.
    /// - Throws: ``XAIError/file(path:reason:)`` for a missing, corrupt or foreign file;
    ///   ``XAIError/tooLarge(what:bytes:limit:)`` (in the file) for a picture over ``Limits/imagePixels``.
    public static func read(_ path: String) throws -> RGBImage {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw XAIError.file(path: path, reason: "cannot be read (missing or not a file)")
        }
        return try decode(data, path: path)
    }

    /// Decodes the bytes of a PNG or JPEG file; `path` names it in errors.
    public static func decode(_ data: Data, path: String = "<memory>") throws -> RGBImage {
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
        try checkSize(w, h, path: path, format: "PNG")
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
        return RGBImage(unchecked: w, h, rgb)
    }

    static func readJPEG(_ bytes: [UInt8], path: String) throws -> RGBImage {
        guard let handle = tjInitDecompress() else { throw XAIError.file(path: path, reason: "TurboJPEG could not start") }
        defer { tjDestroy(handle) }
        var data = bytes
        var w: Int32 = 0, h: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        func failure() -> XAIError { XAIError.file(path: path, reason: "corrupt JPEG: \(String(cString: tjGetErrorStr2(handle)))") }
        guard tjDecompressHeader3(handle, &data, UInt(data.count), &w, &h, &subsampling, &colorspace) == 0 else { throw failure() }
        try checkSize(Int(w), Int(h), path: path, format: "JPEG")
        var pixels = [UInt8](repeating: 0, count: Int(w) * Int(h) * 3)
        let status = tjDecompress2(handle, &data, UInt(data.count), &pixels, w, 0, h, Int32(TJPF_RGB.rawValue), 0)
        // A warning (e.g. a truncated but decodable file) still yields pixels; an error does not.
        if status != 0 && tjGetErrorCode(handle) == Int32(TJERR_FATAL.rawValue) { throw failure() }
        return RGBImage(unchecked: Int(w), Int(h), pixels)
    }

    /// Writes an 8-bit RGB PNG. libpng's fast mode (larger files, written several times faster):
    /// an image set writes two pictures per image and method.
    public func writePNG(_ path: String) throws {
        var image = png_image()
        image.version = xai_png_image_version()
        image.flags = xai_png_flag_fast()
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = xai_png_format_rgb()
        // Encoded in memory and written through FileSystem, so a full disk or a read-only folder
        // is reported in plain words, and a reader never sees half a file. Raw rows plus zlib's
        // stored-block overhead bound the size; libpng says how much it needs if that falls short.
        var size = pixels.count + height + pixels.count / 1000 + 4096
        for _ in 0..<2 {
            var encoded = [UInt8](repeating: 0, count: size)
            var used = size
            let ok = pixels.withUnsafeBytes { p in encoded.withUnsafeMutableBytes { png_image_write_to_memory(&image, $0.baseAddress, &used, 0, p.baseAddress, 0, nil) } }
            if ok != 0 {
                try FileSystem.write(Data(encoded[..<used]), to: path)
                return
            }
            guard used > size else { break }
            size = used
            image.warning_or_error = 0
        }
        throw XAIError.file(path: path, reason: "cannot encode PNG: \(Self.message(image))")
    }

    /// Resizes exactly as Pillow's `Image.resize(..., BILINEAR)` does for 8-bit pictures (what
    /// torchvision's `Resize` runs on PIL images): a triangle filter whose support widens with the
    /// shrink factor (antialiasing), coefficients normalised and rounded to 22-bit fixed point, a
    /// horizontal pass into an 8-bit picture, then a vertical pass.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for a size that is not
    ///   positive or exceeds ``Limits/imagePixels``.
    public func resized(width newWidth: Int, height newHeight: Int) throws -> RGBImage {
        guard newWidth >= 1, newHeight >= 1, newWidth <= Limits.imagePixels / newHeight, width >= 1, height >= 1 else {
            throw XAIError.invalidArgument(parameter: "size", value: "\(newWidth)x\(newHeight)", reason: "cannot resize a \(width)x\(height) picture to it")
        }
        var image = self
        if newWidth != width { image = image.resampled(horizontally: true, to: newWidth) }
        if newHeight != height { image = image.resampled(horizontally: false, to: newHeight) }
        return image
    }

    /// Pillow's fixed-point precision for 8-bit resampling.
    private static let precisionBits = 32 - 8 - 2

    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear filter: per output
    /// index, the first input index and the fixed-point weights.
    private static func coefficients(input: Int, output: Int) -> [(start: Int, weights: [Int])] {
        let scale = Double(Float(input)) / Double(output)
        let filterScale = max(scale, 1)
        let support = 1.0 * filterScale
        return (0..<output).map { o in
            let centre = (Double(o) + 0.5) * scale
            let xmin = max(Int(centre - support + 0.5), 0)
            let xmax = min(Int(centre + support + 0.5), input) - xmin
            var k = (0..<max(xmax, 0)).map { x -> Double in
                let t = abs((Double(x + xmin) - centre + 0.5) / filterScale)
                return t < 1 ? 1 - t : 0
            }
            let total = k.reduce(0, +)
            if total != 0 { k = k.map { $0 / total } }
            let one = Double(1 << precisionBits)
            return (xmin, k.map { $0 < 0 ? Int(-0.5 + $0 * one) : Int(0.5 + $0 * one) })
        }
    }

    /// One pass of Pillow's separable resampling along x (`horizontally`) or y, to `size` pixels.
    private func resampled(horizontally: Bool, to size: Int) -> RGBImage {
        let (outW, outH) = horizontally ? (size, height) : (width, size)
        let taps = Self.coefficients(input: horizontally ? width : height, output: size)
        let shift = Self.precisionBits
        var out = [UInt8](repeating: 0, count: outW * outH * 3)
        pixels.withUnsafeBufferPointer { src in
            for y in 0..<outH {
                for x in 0..<outW {
                    let (start, weights) = taps[horizontally ? x : y]
                    for c in 0..<3 {
                        var acc = 1 << (shift - 1)
                        for (i, w) in weights.enumerated() {
                            let p = horizontally ? (y * width + start + i) * 3 + c : ((start + i) * width + x) * 3 + c
                            acc += Int(src[p]) * w
                        }
                        // Pillow's clip8.
                        out[(y * outW + x) * 3 + c] = acc >= ((1 << shift) << 8) ? 255 : (acc <= 0 ? 0 : UInt8(acc >> shift))
                    }
                }
            }
        }
        return RGBImage(unchecked: outW, outH, out)
    }

    /// The `width x height` box at `(left, top)`.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for a box outside the picture.
    public func cropped(left: Int, top: Int, width w: Int, height h: Int) throws -> RGBImage {
        guard left >= 0, top >= 0, w >= 0, h >= 0, left <= width - w, top <= height - h else {
            throw XAIError.invalidArgument(parameter: "box", value: "(\(left), \(top), \(w), \(h))", reason: "outside the \(width)x\(height) picture")
        }
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            let src = ((top + y) * width + left) * 3
            out.replaceSubrange((y * w * 3)..<((y + 1) * w * 3), with: pixels[src..<(src + w * 3)])
        }
        return RGBImage(unchecked: w, h, out)
    }
}
