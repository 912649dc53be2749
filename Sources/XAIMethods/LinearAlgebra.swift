import Foundation

/// Weighted ridge regression of `y` on the `columns` of binary `rows`, intercept unpenalised
/// (scikit-learn's Ridge with sample weights), with the weighted R^2 of the fit.
func weightedRidge(_ rows: [[Bool]], _ y: [Double], _ w: [Double], columns: [Int], alpha: Double) -> (coefficients: [Double], intercept: Double, r2: Double) {
    let k = columns.count, n = rows.count
    let total = w.reduce(0, +)
    var mx = [Double](repeating: 0, count: k)
    var my = 0.0
    for i in 0..<n {
        my += w[i] * y[i]
        for (a, j) in columns.enumerated() where rows[i][j] { mx[a] += w[i] }
    }
    my /= total
    for a in 0..<k { mx[a] /= total }
    var gram = [Double](repeating: 0, count: k * k), rhs = [Double](repeating: 0, count: k)
    var centred = [Double](repeating: 0, count: k)
    for i in 0..<n {
        for (a, j) in columns.enumerated() { centred[a] = (rows[i][j] ? 1 : 0) - mx[a] }
        let dy = y[i] - my
        for a in 0..<k {
            let wa = w[i] * centred[a]
            rhs[a] += wa * dy
            for b in a..<k { gram[a * k + b] += wa * centred[b] }
        }
    }
    for a in 0..<k {
        gram[a * k + a] += alpha
        for b in 0..<a { gram[a * k + b] = gram[b * k + a] }
    }
    let c = solveSymmetric(gram, rhs, size: k)
    let intercept = my - zip(mx, c).reduce(0) { $0 + $1.0 * $1.1 }
    var residual = 0.0, spread = 0.0
    for i in 0..<n {
        var prediction = intercept
        for (a, j) in columns.enumerated() where rows[i][j] { prediction += c[a] }
        residual += w[i] * (y[i] - prediction) * (y[i] - prediction)
        spread += w[i] * (y[i] - my) * (y[i] - my)
    }
    return (c, intercept, spread > 0 ? 1 - residual / spread : 1)
}

/// Solves the symmetric positive semi-definite system `a x = b` by Cholesky; a singular system
/// (too few samples for the features) gets the smallest ridge that makes it solvable, which picks
/// the minimum-norm-like solution instead of failing.
func solveSymmetric(_ a: [Double], _ b: [Double], size n: Int) -> [Double] {
    if n == 0 { return [] }
    let trace = (0..<n).reduce(0.0) { $0 + abs(a[$1 * n + $1]) }
    var jitter = 0.0
    while true {
        var l = [Double](repeating: 0, count: n * n)
        var ok = true
        outer: for i in 0..<n {
            for j in 0...i {
                var s = a[i * n + j] + (i == j ? jitter : 0)
                for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                if i == j {
                    if s <= 1e-12 * max(trace, 1e-300) { ok = false; break outer }
                    l[i * n + i] = s.squareRoot()
                } else {
                    l[i * n + j] = s / l[j * n + j]
                }
            }
        }
        if ok {
            var z = b
            for i in 0..<n {
                for k in 0..<i { z[i] -= l[i * n + k] * z[k] }
                z[i] /= l[i * n + i]
            }
            for i in stride(from: n - 1, through: 0, by: -1) {
                for k in (i + 1)..<n { z[i] -= l[k * n + i] * z[k] }
                z[i] /= l[i * n + i]
            }
            return z
        }
        jitter = jitter == 0 ? 1e-10 * max(trace / Double(n), 1e-300) : jitter * 10
    }
}
