import Foundation
import XAICore

/// Spearman rank correlation (ties get their average rank); 1 when either side is constant and
/// both are equal, 0 when only one is constant.
/// - Throws: ``XAIError/shapeMismatch(op:expected:got:)`` when the two lists differ in length.
public func spearmanCorrelation(_ a: [Double], _ b: [Double]) throws -> Double {
    guard a.count == b.count else {
        throw XAIError.shapeMismatch(op: "spearmanCorrelation", expected: "two lists of equal length", got: [Shape([a.count]), Shape([b.count])])
    }
    if a.isEmpty { return 1 }
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
