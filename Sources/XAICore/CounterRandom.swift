/// The engine's one definition of device noise: standard normal values from a counter-based
/// generator, so that value `index` of stream `stream` is a pure function of `(seed, stream, index)`.
/// Any backend can draw any part of it in any order, in parallel, and get the same bits: the CPU
/// backend runs this code and `Kernels/random.cl` spells the same arithmetic in OpenCL C.
///
/// - Bits: Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as
///   1, 2, 3", SC 2011), counter `(index / 4 low, index / 4 high, stream low, stream high)`, key
///   `(seed low, seed high)`.
/// - Normals: Box-Muller on the two pairs of the block's four words, lane `index % 4`. The
///   logarithm, sine and cosine are the polynomials below in float32 with every product and sum
///   rounded on its own (no fused multiply-add, which OpenCL compilers may otherwise contract), and
///   the one division and square root are IEEE's correctly rounded ones (the OpenCL program is
///   built with `-cl-fp32-correctly-rounded-divide-sqrt`), so the bits do not depend on a math
///   library.
public enum CounterRandom {
    /// One Philox4x32-10 block: 10 rounds of the counter under the key, the key bumped by the Weyl
    /// constants between rounds.
    @inline(__always)
    public static func philox(_ c: (UInt32, UInt32, UInt32, UInt32), key: (UInt32, UInt32)) -> (UInt32, UInt32, UInt32, UInt32) {
        var (c0, c1, c2, c3) = c
        var (k0, k1) = key
        for round in 0..<10 {
            if round > 0 { k0 &+= 0x9E37_79B9; k1 &+= 0xBB67_AE85 }
            let p0 = UInt64(0xD251_1F53) &* UInt64(c0), p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            (c0, c1, c2, c3) = (UInt32(truncatingIfNeeded: p1 >> 32) ^ c1 ^ k0, UInt32(truncatingIfNeeded: p1),
                                UInt32(truncatingIfNeeded: p0 >> 32) ^ c3 ^ k1, UInt32(truncatingIfNeeded: p0))
        }
        return (c0, c1, c2, c3)
    }

    /// `ln u` for `u` in (0, 1] (a multiple of 2^-24): `u = m 2^e` with `m` in [sqrt(1/2), sqrt(2)),
    /// `ln m = 2 atanh(s)` with `s = (m - 1) / (m + 1)`, |s| <= 0.172, as its odd series to s^9
    /// (truncation below 2e-9 relative).
    @inline(__always)
    static func logUnit(_ u: Float) -> Float {
        var bits = u.bitPattern
        var e = Int32(bitPattern: bits >> 23) - 127
        bits = (bits & 0x007F_FFFF) | 0x3F80_0000
        if bits > 0x3FB5_04F3 { bits -= 0x0080_0000; e += 1 }
        let m = Float(bitPattern: bits)
        let s = (m - 1) / (m + 1), z = s * s
        let series = s * (2 + z * (0.6666667 + z * (0.4 + z * (0.2857143 + z * 0.22222222))))
        let fe = Float(e)
        return fe * 0.69314575 + (series + fe * 1.4286068e-06)
    }

    /// Sine and cosine of `theta` in [0, pi/4] (Taylor to theta^9 and theta^10; truncation below 3e-9).
    @inline(__always)
    static func sinCosQuarter(_ theta: Float) -> (sin: Float, cos: Float) {
        let t = theta * theta
        let s = theta * (1 + t * (-0.16666667 + t * (0.008333334 + t * (-0.0001984127 + t * 2.7557319e-06))))
        let c = 1 + t * (-0.5 + t * (0.041666668 + t * (-0.0013888889 + t * (2.4801588e-05 + t * -2.755732e-07))))
        return (s, c)
    }

    /// Two standard normals from two random words (Box-Muller): radius from `a`, angle from `b`.
    @inline(__always)
    public static func boxMuller(_ a: UInt32, _ b: UInt32) -> (Float, Float) {
        let u = Float((a >> 8) + 1) * 5.9604645e-08          // (0, 1], 2^-24 steps
        let r = (-2 * logUnit(u)).squareRoot()
        // The angle 2 pi k / 2^24 split exactly: its quadrant (top 2 bits), then the fraction f of
        // the quadrant reflected into [0, 1/2] so that the polynomials see at most pi/4.
        let k = b >> 8
        let f = Float(k & 0x3F_FFFF) * 2.3841858e-07        // 2^-22
        let low = f <= 0.5
        let sc = sinCosQuarter((low ? f : 1 - f) * 1.5707964)
        let (s, c) = low ? (sc.sin, sc.cos) : (sc.cos, sc.sin)
        switch k >> 22 {
        case 0: return (r * c, r * s)
        case 1: return (r * -s, r * c)
        case 2: return (r * -c, r * -s)
        default: return (r * s, r * -c)
        }
    }

    /// The four normals of block `block` (values `4 block ..< 4 block + 4`) of a stream.
    @inline(__always)
    public static func normalBlock(seed: UInt64, stream: UInt64, block: UInt64) -> (Float, Float, Float, Float) {
        let w = philox((UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: block >> 32),
                        UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32)),
                       key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
        let (n0, n1) = boxMuller(w.0, w.1), (n2, n3) = boxMuller(w.2, w.3)
        return (n0, n1, n2, n3)
    }

    /// Value `index` of stream `stream`.
    public static func normal(seed: UInt64, stream: UInt64, index: Int) -> Float {
        let b = normalBlock(seed: seed, stream: stream, block: UInt64(index / 4))
        switch index % 4 {
        case 0: return b.0
        case 1: return b.1
        case 2: return b.2
        default: return b.3
        }
    }

    /// Values `0 ..< count` of stream `stream`, on the host (what a backend's noise adds).
    public static func normals(count: Int, seed: UInt64, stream: UInt64) -> [Float] {
        let zeros = [Float](repeating: 0, count: max(count, 0))
        var out = zeros
        zeros.withUnsafeBufferPointer { z in
            out.withUnsafeMutableBufferPointer { o in
                guard let zb = z.baseAddress, let ob = o.baseAddress else { return }
                addNoise(zb, ob, elements: 0..<count, sigma: 1, seed: seed, stream: stream)
            }
        }
        return out
    }

    /// `out[i] = base[i] + sigma * normal(seed, stream, i)` for `i` in `elements` (whose start is a
    /// multiple of 4): one noisy copy, or part of one, with the arithmetic of the OpenCL kernel.
    public static func addNoise(_ base: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, elements: Range<Int>,
                                sigma: Float, seed: UInt64, stream: UInt64) {
        var i = elements.lowerBound
        while i < elements.upperBound {
            let b = normalBlock(seed: seed, stream: stream, block: UInt64(i / 4))
            let lanes = min(4, elements.upperBound - i)
            out[i] = base[i] + sigma * b.0
            if lanes > 1 { out[i + 1] = base[i + 1] + sigma * b.1 }
            if lanes > 2 { out[i + 2] = base[i + 2] + sigma * b.2 }
            if lanes > 3 { out[i + 3] = base[i + 3] + sigma * b.3 }
            i += 4
        }
    }
}

/// The arithmetic of ``Backend/runningSum(_:state:absolute:)``, which every backend runs (the
/// OpenCL kernel spells it in OpenCL C): per element, in row order, `sum += v` and `squares += v * v`
/// in float32, each with Neumaier's compensation, `v` the value or its magnitude. The state is
/// `[sum, compensation, squares, compensation]`, `item` values each.
public enum RunningSum {
    @inline(__always)
    static func add(_ s: inout Float, _ c: inout Float, _ v: Float) {
        let t = s + v
        if Swift.abs(s) >= Swift.abs(v) { c += (s - t) + v } else { c += (v - t) + s }
        s = t
    }

    /// Adds `rows` rows of `item` values to `state` for the elements in `elements`.
    public static func add(_ values: UnsafePointer<Float>, rows: Int, item: Int, state: UnsafeMutablePointer<Float>,
                           absolute: Bool, elements: Range<Int>) {
        for i in elements {
            var (s, sc, q, qc) = (state[i], state[item + i], state[2 * item + i], state[3 * item + i])
            for k in 0..<rows {
                let g = values[k * item + i]
                let v = absolute ? Swift.abs(g) : g
                add(&s, &sc, v)
                add(&q, &qc, v * v)
            }
            (state[i], state[item + i], state[2 * item + i], state[3 * item + i]) = (s, sc, q, qc)
        }
    }
}
