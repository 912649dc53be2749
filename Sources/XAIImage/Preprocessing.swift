import Foundation
import XAICore

/// How a picture becomes a model input, exactly as torchvision's
/// `Compose([Resize(resize), CenterCrop((height, width)), ToTensor(), Normalize(mean, std)])` does it
/// for a PIL image: the shorter side is resized to `resize` (the longer one truncated, as
/// torchvision computes it; antialiased), the centre crop is taken with torchvision's rounding (and
/// zero padding where the resized picture is smaller than the crop), pixels are scaled to [0, 1]
/// and normalised per channel. A JSON sidecar next to the model (`model.json`: `{"mean": [...],
/// "std": [...], "resize": 256, "labels": [...]}`) sets these for the command line.
public struct Preprocessing: Codable, Sendable, Equatable {
    /// Shorter side after resizing; `nil`: the smallest side that covers the model's input (the
    /// input side for a square model, so nothing is cut off a square picture).
    public var resize: Int?
    public var mean: [Float]
    public var std: [Float]

    public init(resize: Int? = nil, mean: [Float], std: [Float]) {
        self.resize = resize
        self.mean = mean
        self.std = std
    }

    /// torchvision's ImageNet statistics.
    public static let imagenet = Preprocessing(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])
    /// Pixels scaled to [0, 1], nothing else.
    public static let none = Preprocessing(mean: [0, 0, 0], std: [1, 1, 1])

    /// Where the model input lies in the original picture, in its pixel coordinates (the box may
    /// reach outside the picture where the crop was padded).
    public struct Placement: Sendable, Equatable {
        public let left: Double, top: Double, width: Double, height: Double

        public init(left: Double, top: Double, width: Double, height: Double) {
            self.left = left; self.top = top; self.width = width; self.height = height
        }
    }

    /// Checks the statistics and the resize side.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` naming `mean`, `std` or `resize`.
    public func validate() throws {
        guard mean.count == 3, mean.allSatisfy(\.isFinite) else {
            throw XAIError.invalidArgument(parameter: "mean", value: "\(mean)", reason: "needs three finite values (r, g, b)")
        }
        guard std.count == 3, std.allSatisfy({ $0.isFinite && $0 != 0 }) else {
            throw XAIError.invalidArgument(parameter: "std", value: "\(std)", reason: "needs three finite, non-zero values (r, g, b)")
        }
        if let resize, !(1...65_536).contains(resize) {
            throw XAIError.invalidArgument(parameter: "resize", value: "\(resize)", reason: "must be between 1 and 65536 pixels")
        }
    }

    /// The resized size `(width, height)` of a `w x h` picture for a shorter side of `side`
    /// (torchvision: the longer side is `int(side * long / short)`).
    static func resizedSize(width w: Int, height h: Int, side: Int) -> (Int, Int) {
        let (short, long) = (min(w, h), max(w, h))
        let newLong = Int(Double(side * long) / Double(short))
        return w <= h ? (side, newLong) : (newLong, side)
    }

    /// The `[1, 3, height, width]` input for `image`, the part of the resized picture it shows, and
    /// where that lies in `image`.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for bad statistics, resize
    ///   side or model size.
    public func apply(_ image: RGBImage, height: Int, width: Int) throws -> (tensor: Tensor, shown: RGBImage, placement: Placement) {
        try validate()
        guard height >= 1, width >= 1, height <= 65_536, width <= 65_536 else {
            throw XAIError.invalidArgument(parameter: "size", value: "\(height)x\(width)", reason: "the model's input size must be between 1 and 65536")
        }
        guard image.width >= 1, image.height >= 1 else {
            throw XAIError.invalidArgument(parameter: "image", value: "\(image.width)x\(image.height)", reason: "has no pixels")
        }
        var side = resize ?? min(height, width)
        if resize == nil {
            // Grow the shorter side until the resized picture covers the crop.
            while true {
                let (rw, rh) = Self.resizedSize(width: image.width, height: image.height, side: side)
                if rw >= width && rh >= height { break }
                side += 1
            }
        }
        let (rw, rh) = Self.resizedSize(width: image.width, height: image.height, side: side)
        guard rw >= 1, rh >= 1, rw <= Limits.imagePixels / rh else {
            throw XAIError.invalidArgument(parameter: "resize", value: "\(side)", reason: "resizes the \(image.width)x\(image.height) picture to \(rw)x\(rh)")
        }
        let resized = try image.resized(width: rw, height: rh)
        // torchvision's CenterCrop: pad with zeros where the crop is larger, then crop with
        // offsets int(round((size - crop) / 2)) (half to even, as Python rounds).
        let padLeft = width > rw ? (width - rw) / 2 : 0, padTop = height > rh ? (height - rh) / 2 : 0
        let (pw, ph) = (max(rw, width), max(rh, height))
        let left = Int((Double(pw - width) / 2).rounded(.toNearestOrEven)), top = Int((Double(ph - height) / 2).rounded(.toNearestOrEven))
        var shown = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            let sy = top + y - padTop
            guard sy >= 0, sy < rh else { continue }
            for x in 0..<width {
                let sx = left + x - padLeft
                guard sx >= 0, sx < rw else { continue }
                for c in 0..<3 { shown[(y * width + x) * 3 + c] = resized.pixels[(sy * rw + sx) * 3 + c] }
            }
        }
        var values = [Float](repeating: 0, count: 3 * height * width)
        for p in 0..<(height * width) {
            for c in 0..<3 { values[c * height * width + p] = (Float(shown[p * 3 + c]) / 255 - mean[c]) / std[c] }
        }
        let sx = Double(image.width) / Double(rw), sy = Double(image.height) / Double(rh)
        return (Tensor(unchecked: [1, 3, height, width], values), RGBImage(unchecked: width, height, shown),
                Placement(left: Double(left - padLeft) * sx, top: Double(top - padTop) * sy, width: Double(width) * sx, height: Double(height) * sy))
    }
}
