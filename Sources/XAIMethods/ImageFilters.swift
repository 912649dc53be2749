import Foundation
import XAICore

/// Separable Gaussian blur of every channel of `[N, C, H, W]`, truncated at 4 sigma and reflecting
/// at the edges (scipy.ndimage's `reflect` mode: the edge pixel is repeated). Host code: it runs
/// once per image, never per perturbed sample.
public func gaussianBlur(_ image: Tensor, sigma: Float) throws -> Tensor {
    guard image.shape.rank == 4 else {
        throw XAIError.shapeMismatch(op: "gaussianBlur", message: "expects [N, C, H, W], got \(image.shape)")
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

/// Spearman rank correlation (ties get their average rank); 1 when either side is constant and
/// both are equal, 0 when only one is constant.
public func spearmanCorrelation(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    func ranks(_ v: [Double]) -> [Double] {
        let order = v.indices.sorted { v[$0] < v[$1] }
        var r = [Double](repeating: 0, count: v.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && v[order[j + 1]] == v[order[i]] { j += 1 }
            let rank = Double(i + j) / 2
            for k in i...j { r[order[k]] = rank }
            i = j + 1
        }
        return r
    }
    let (ra, rb) = (ranks(a), ranks(b))
    let n = Double(a.count)
    let (ma, mb) = (ra.reduce(0, +) / n, rb.reduce(0, +) / n)
    var num = 0.0, da = 0.0, db = 0.0
    for i in 0..<a.count {
        num += (ra[i] - ma) * (rb[i] - mb)
        da += (ra[i] - ma) * (ra[i] - ma)
        db += (rb[i] - mb) * (rb[i] - mb)
    }
    if da == 0 || db == 0 { return a == b ? 1 : 0 }
    return num / (da * db).squareRoot()
}
