import Foundation
import XAICore

/// One image to explain: the model input, the picture the overlays go on, and where the input
/// lies in it.
public struct PreparedImage: Sendable {
    public let source: String
    public let stem: String
    public let tensor: Tensor
    public let picture: RGBImage
    public let placement: Preprocessing.Placement

    /// The output folder of image `index` of a file holding `count` images whose own folder is
    /// `base`: the file's, or `<base>_<index>` for each image of an `.npy` batch.
    public static func stem(_ base: String, image index: Int, of count: Int) -> String {
        count == 1 ? base : "\(base)_\(index)"
    }
}

extension Preprocessing {
    /// Loads a PNG/JPEG (preprocessed) or a `.npy` tensor (`[3,H,W]` or `[N,3,H,W]`, already
    /// preprocessed, finite) as one or more model inputs for a `height x width` model, each with the
    /// picture its overlays go on: what `xai explain` and the C ABI's and Python's `preprocess` do.
    /// - Throws: the decoder's or the shape check's error, wrapped with the file.
    public func prepare(_ path: String, height: Int, width: Int) throws -> [PreparedImage] {
        do {
            return try prepareUnnamed(path, height: height, width: width)
        } catch let e as XAIError {
            throw e.inFile(path)
        }
    }

    private func prepareUnnamed(_ path: String, height: Int, width: Int) throws -> [PreparedImage] {
        let preprocessing = self
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
                return PreparedImage(source: path, stem: PreparedImage.stem(stem, image: b, of: n), tensor: Tensor(unchecked: [1, 3, height, width], values),
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
}
