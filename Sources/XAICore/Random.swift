import Foundation

/// A small, fast, seeded generator (SplitMix64) so that every stochastic result is reproducible
/// from its seed on every platform.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform float in [0, 1) with 24 random bits.
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Two independent standard normal samples (both outputs of one Box-Muller transform).
    public mutating func nextGaussianPair() -> (Float, Float) {
        let u1 = max(Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0), 1e-300)
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        let r = (-2 * log(u1)).squareRoot(), angle = 2 * Double.pi * u2
        return (Float(r * cos(angle)), Float(r * sin(angle)))
    }

    /// `count` standard normal samples of stream `stream` of `seed`: each stream is its own
    /// generator, so streams can be drawn in any order or in parallel and give the same values.
    public static func gaussians(count: Int, seed: UInt64, stream: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed ^ (stream &* 0xD6E8_FEB8_6659_FD93 &+ 0x2545_F491_4F6C_DD1D))
        var out = [Float](repeating: 0, count: count)
        var i = 0
        while i + 1 < count {
            (out[i], out[i + 1]) = rng.nextGaussianPair()
            i += 2
        }
        if i < count { out[i] = rng.nextGaussianPair().0 }
        return out
    }

    /// A standard normal sample (Box-Muller).
    public mutating func nextGaussian() -> Float {
        let u1 = max(Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0), 1e-300)
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}

