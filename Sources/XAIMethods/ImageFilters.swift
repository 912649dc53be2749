import Foundation
import XAICore

/// Separable Gaussian blur of every channel of `[N, C, H, W]`, truncated at 4 sigma and reflecting
/// at the edges (scipy.ndimage's `reflect` mode: the edge pixel is repeated). Host code: it runs
/// once per image, never per perturbed sample.
public func gaussianBlur(_ image: Tensor, sigma: Float) throws -> Tensor {
    guard image.shape.rank == 4 else {
        throw XAIError.shapeMismatch(op: "gaussianBlur", expected: "[N, C, H, W]", got: [image.shape])
    }
    guard sigma >= 0, sigma <= 10_000 else {
        throw XAIError.invalidArgument(parameter: "sigma", value: "\(sigma)", reason: "blur sigma must be between 0 and 10000 pixels")
    }
    if sigma == 0 { return image }
    let radius = Int(4 * Double(sigma) + 0.5)
    var taps = (-radius...radius).map { exp(-0.5 * Double($0 * $0) / Double(sigma * sigma)) }
    let total = taps.reduce(0, +)
    taps = taps.map { $0 / total }
    let (h, w) = (image.shape[2], image.shape[3])
    let planes = image.shape.count / (h * w)
    func reflect(_ i: Int, _ n: Int) -> Int {
        // ... c b a | a b c ... | c b a ... repeated for radii larger than the image.
        let period = 2 * n
        var j = i % period
        if j < 0 { j += period }
        return j < n ? j : period - 1 - j
    }
    var out = image.scalars
    var row = [Double](repeating: 0, count: max(h, w))
    for p in 0..<planes {
        let base = p * h * w
        for y in 0..<h {
            for x in 0..<w {
                var acc = 0.0
                for (k, t) in taps.enumerated() { acc += t * Double(out[base + y * w + reflect(x + k - radius, w)]) }
                row[x] = acc
            }
            for x in 0..<w { out[base + y * w + x] = Float(row[x]) }
        }
        for x in 0..<w {
            for y in 0..<h {
                var acc = 0.0
                for (k, t) in taps.enumerated() { acc += t * Double(out[base + reflect(y + k - radius, h) * w + x]) }
                row[y] = acc
            }
            for y in 0..<h { out[base + y * w + x] = Float(row[y]) }
        }
    }
    return Tensor(unchecked: image.shape, out)
}
