import XAICore

/// ONNX Resize's attributes (opsets 10-21), for the constants exporters resize: a vision
/// transformer's position embeddings interpolated to the input's grid (DINOv2, bicubic), BEiT's
/// relative position bias table (bilinear). Evaluated in float64 on the host, folded at load or
/// kept per input shape; a Resize of an activation is refused with the node's name.
public struct ResizeMode: Sendable, Hashable {
    public enum Interpolation: String, Sendable, Hashable { case nearest, linear, cubic }
    /// How an output coordinate maps to an input coordinate (ONNX `coordinate_transformation_mode`).
    public enum Coordinates: String, Sendable, Hashable {
        case halfPixel = "half_pixel", pytorchHalfPixel = "pytorch_half_pixel", alignCorners = "align_corners"
        case asymmetric, halfPixelSymmetric = "half_pixel_symmetric"
    }
    public enum Rounding: String, Sendable, Hashable {
        case roundPreferFloor = "round_prefer_floor", roundPreferCeil = "round_prefer_ceil", floor, ceil
    }

    public var interpolation: Interpolation
    public var coordinates: Coordinates
    public var rounding: Rounding
    /// The cubic kernel's `a` (-0.75 as PyTorch's bicubic).
    public var cubicA: Double
    /// Cubic weights of taps outside the input set to zero and the rest renormalised.
    public var excludeOutside: Bool
    /// The axes `scales` and `sizes` list (opset 18), or every axis.
    public var axes: [Int]?

    public init(interpolation: Interpolation, coordinates: Coordinates, rounding: Rounding, cubicA: Double, excludeOutside: Bool, axes: [Int]?) {
        self.interpolation = interpolation
        self.coordinates = coordinates
        self.rounding = rounding
        self.cubicA = cubicA
        self.excludeOutside = excludeOutside
        self.axes = axes
    }

    /// `x` resized to `sizes`, or by `scales` (output extent `floor(extent * scale)`); the
    /// interpolation is separable, so it runs one axis at a time, in float64.
    public func apply(_ x: Tensor, scales: [Double]?, sizes: [Int]?) throws -> Tensor {
        let rank = x.shape.rank
        let listed = try (axes ?? Array(0..<rank)).map { a -> Int in
            guard let n = x.shape.normalizedAxis(a) else {
                throw XAIError.invalidArgument(parameter: "axes", value: "\(axes ?? [])", reason: "Resize: out of range for \(x.shape)")
            }
            return n
        }
        var scale = [Double](repeating: 1, count: rank), out = x.shape.dims
        if let sizes {
            guard sizes.count == listed.count, sizes.allSatisfy({ $0 >= 0 && $0 <= 1 << 24 }) else {
                throw XAIError.invalidArgument(parameter: "sizes", value: "\(sizes)", reason: "Resize: one non-negative size per resized axis of \(x.shape)")
            }
            for (k, a) in listed.enumerated() {
                out[a] = sizes[k]
                scale[a] = x.shape[a] > 0 ? Double(sizes[k]) / Double(x.shape[a]) : 1
            }
        } else if let scales {
            guard scales.count == listed.count, scales.allSatisfy({ $0.isFinite && $0 > 0 && $0 <= 65536 }) else {
                throw XAIError.invalidArgument(parameter: "scales", value: "\(scales)", reason: "Resize: one positive scale per resized axis of \(x.shape)")
            }
            for (k, a) in listed.enumerated() {
                scale[a] = scales[k]
                out[a] = Int((Double(x.shape[a]) * scales[k]).rounded(.down))
            }
        } else {
            throw XAIError.invalidArgument(parameter: "scales/sizes", value: "", reason: "Resize: needs scales or sizes")
        }
        let outShape = try Shape(validating: out, what: "Resize output")
        var values = x.scalars.map(Double.init)
        var shape = x.shape.dims
        for axis in 0..<rank where out[axis] != shape[axis] || scale[axis] != 1 {
            values = try resized(values, shape: shape, axis: axis, to: out[axis], scale: scale[axis])
            shape[axis] = out[axis]
        }
        return Tensor(unchecked: outShape, values.map(Float.init))
    }

    /// One axis resized: each output position's taps and weights along it, applied to every line.
    private func resized(_ values: [Double], shape: [Int], axis: Int, to count: Int, scale: Double) throws -> [Double] {
        let n = shape[axis]
        guard n > 0 else { throw XAIError.invalidArgument(parameter: "input", value: "\(shape)", reason: "Resize: an empty axis cannot be interpolated") }
        let taps = (0..<count).map { weights(source(Double($0), extent: n, count: count, scale: scale), extent: n) }
        let inner = shape[(axis + 1)...].reduce(1, *), outer = shape[..<axis].reduce(1, *)
        var result = [Double](repeating: 0, count: outer * count * inner)
        for o in 0..<outer {
            for (j, tap) in taps.enumerated() {
                let destination = (o * count + j) * inner
                for (index, weight) in tap where weight != 0 {
                    let from = (o * n + index) * inner
                    for k in 0..<inner { result[destination + k] += weight * values[from + k] }
                }
            }
        }
        return result
    }

    /// The input coordinate output position `x` reads.
    private func source(_ x: Double, extent n: Int, count: Int, scale: Double) -> Double {
        switch coordinates {
        case .halfPixel: return (x + 0.5) / scale - 0.5
        case .pytorchHalfPixel: return count > 1 ? (x + 0.5) / scale - 0.5 : 0
        case .alignCorners: return count == 1 ? 0 : x * Double(n - 1) / Double(count - 1)
        case .asymmetric: return x / scale
        case .halfPixelSymmetric:
            let adjustment = Double(count) / (scale * Double(n))
            let offset = Double(n) / 2 * (1 - adjustment)
            return offset + (x + 0.5) / scale - 0.5
        }
    }

    /// Input indices and weights for input coordinate `c` (indices clamped to the edge, as the
    /// ONNX reference pads with edge values).
    private func weights(_ c: Double, extent n: Int) -> [(Int, Double)] {
        func clamp(_ i: Int) -> Int { min(max(i, 0), n - 1) }
        // Beyond two taps outside, every index clamps to the edge anyway.
        let c = c.isFinite ? min(max(c, -3), Double(n) + 3) : 0
        switch interpolation {
        case .nearest:
            let i: Double
            switch rounding {
            case .roundPreferFloor: i = c == c.rounded(.down) + 0.5 ? c.rounded(.down) : c.rounded()
            case .roundPreferCeil: i = c.rounded()
            case .floor: i = c.rounded(.down)
            case .ceil: i = c.rounded(.up)
            }
            return [(clamp(Int(i)), 1)]
        case .linear:
            let x0 = c.rounded(.down), t = c - x0
            return [(clamp(Int(x0)), 1 - t), (clamp(Int(x0) + 1), t)]
        case .cubic:
            let x0 = c.rounded(.down), t = c - x0
            let a = cubicA
            func kernel(_ d: Double) -> Double {
                let d = Swift.abs(d)
                if d <= 1 { return ((a + 2) * d - (a + 3)) * d * d + 1 }
                if d < 2 { return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a }
                return 0
            }
            var taps = (-1...2).map { k in (Int(x0) + k, kernel(Double(k) - t)) }
            if excludeOutside {
                taps = taps.map { ($0.0, (0..<n).contains($0.0) ? $0.1 : 0) }
                let total = taps.reduce(0) { $0 + $1.1 }
                if total != 0 { taps = taps.map { ($0.0, $0.1 / total) } }
            }
            return taps.map { (clamp($0.0), $0.1) }
        }
    }
}
