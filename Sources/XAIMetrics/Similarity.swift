import Foundation
import XAIMethods

/// Similarity and correlation of maps, for the metrics that compare two explanations.
public enum Similarity {
    /// Structural similarity of two maps, as scikit-image's `structural_similarity` with its defaults
    /// and the data range Quantus 0.6's `ssim` passes (max - min over both maps): 7x7 uniform windows,
    /// sample covariances (`N / (N - 1)`), `K1 = 0.01`, `K2 = 0.03`, the mean over the windows that
    /// lie wholly inside the map (scikit-image crops 3 pixels at every edge, so its padding never
    /// counts). 1 for identical maps; NaN for maps smaller than a window.
    public static func ssim(_ a: [Double], _ b: [Double], height h: Int, width w: Int, window: Int = 7) -> Double {
        guard a.count == h * w, b.count == h * w, window % 2 == 1, h >= window, w >= window else { return .nan }
        let range = ((a + b).max() ?? 0) - ((a + b).min() ?? 0)
        let c1 = (0.01 * range) * (0.01 * range), c2 = (0.03 * range) * (0.03 * range)
        let r = window / 2, np = Double(window * window), covariance = np / (np - 1)
        var total = 0.0, count = 0
        for y in r..<(h - r) {
            for x in r..<(w - r) {
                var sa = 0.0, sb = 0.0, saa = 0.0, sbb = 0.0, sab = 0.0
                for dy in -r...r {
                    let row = (y + dy) * w
                    for dx in -r...r {
                        let u = a[row + x + dx], v = b[row + x + dx]
                        sa += u; sb += v; saa += u * u; sbb += v * v; sab += u * v
                    }
                }
                let ua = sa / np, ub = sb / np
                let va = covariance * (saa / np - ua * ua), vb = covariance * (sbb / np - ub * ub), vab = covariance * (sab / np - ua * ub)
                total += ((2 * ua * ub + c1) * (2 * vab + c2)) / ((ua * ua + ub * ub + c1) * (va + vb + c2))
                count += 1
            }
        }
        return total / Double(count)
    }

    /// Each map divided by its largest absolute value (Quantus's `normalise_by_max`; an all-zero map
    /// stays zero).
    public static func normalisedByMax(_ values: ArraySlice<Float>) -> [Double] {
        let top = values.reduce(0) { max($0, abs(Double($1))) }
        return values.map { top > 0 ? Double($0) / top : 0 }
    }

    /// Pearson's correlation; NaN when either side is constant.
    public static func pearson(_ x: [Double], _ y: [Double]) -> Double {
        let n = Double(x.count)
        guard x.count == y.count, x.count > 1 else { return .nan }
        let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for (a, b) in zip(x, y) {
            sxy += (a - mx) * (b - my)
            sxx += (a - mx) * (a - mx)
            syy += (b - my) * (b - my)
        }
        guard sxx > 0, syy > 0 else { return .nan }
        return sxy / (sxx * syy).squareRoot()
    }

    /// Spearman's rank correlation, ties given their average rank (as scipy's `spearmanr`), through
    /// the methods' ``spearmanCorrelation(_:_:)``: where a side is constant, 1 when both are equal
    /// and 0 otherwise (scipy gives NaN); NaN for lists of different lengths.
    public static func spearman(_ x: [Double], _ y: [Double]) -> Double {
        (try? spearmanCorrelation(x, y)) ?? .nan
    }
}
