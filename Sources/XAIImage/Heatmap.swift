import Foundation
import XAICore

/// Colour maps for heatmaps.
public enum Colormap: String, Sendable, CaseIterable {
    case jet, viridis, inferno, turbo
    /// Blue - white - red, for signed maps (0.5 is zero).
    case diverging

    /// The colour at `t` in [0, 1].
    public func color(_ t: Double) -> (Double, Double, Double) {
        let x = min(max(t.isNaN ? 0 : t, 0), 1)
        func ramp(_ stops: [(Double, Double, Double)]) -> (Double, Double, Double) {
            let f = x * Double(stops.count - 1)
            let i = min(Int(f), stops.count - 2), u = f - Double(i)
            let (a, b) = (stops[i], stops[i + 1])
            return ((a.0 + u * (b.0 - a.0)) / 255, (a.1 + u * (b.1 - a.1)) / 255, (a.2 + u * (b.2 - a.2)) / 255)
        }
        switch self {
        case .jet:
            func c(_ v: Double) -> Double { min(max(1.5 - abs(4 * x - v), 0), 1) }
            return (c(3), c(2), c(1))
        case .viridis:
            return ramp([(68, 1, 84), (72, 40, 120), (62, 73, 137), (49, 104, 142), (38, 130, 142), (31, 158, 137), (53, 183, 121), (110, 206, 88), (181, 222, 43), (253, 231, 37)])
        case .inferno:
            return ramp([(0, 0, 4), (31, 12, 72), (85, 15, 109), (136, 34, 106), (186, 54, 85), (227, 89, 51), (249, 140, 10), (249, 201, 50), (252, 255, 164)])
        case .turbo:
            // Polynomial fit of Google's Turbo (Mikhailov), accurate to a few levels per channel.
            let r = 0.13572138 + x * (4.61539260 + x * (-42.66032258 + x * (132.13108234 + x * (-152.94239396 + x * 59.28637943))))
            let g = 0.09140261 + x * (2.19418839 + x * (4.84296658 + x * (-14.18503333 + x * (4.27729857 + x * 2.82956604))))
            let b = 0.10667330 + x * (12.64194608 + x * (-60.58204836 + x * (110.36276771 + x * (-89.90310912 + x * 27.34824973))))
            return (min(max(r, 0), 1), min(max(g, 0), 1), min(max(b, 0), 1))
        case .diverging:
            return ramp([(59, 76, 192), (255, 255, 255), (180, 4, 38)])
        }
    }
}

/// Which part of a signed map is shown.
public enum SignMode: String, Sendable, CaseIterable {
    case positive, negative, absolute, all
    /// `absolute` for pixel-level maps (``MapDetail/pixel``), else `all` for maps with negative
    /// values and `positive` otherwise.
    case auto
}

/// How fine a method's map is, which decides how it is best drawn.
public enum MapDetail: String, Sendable, CaseIterable {
    /// A value per pixel that changes from one pixel to the next (gradients, Gradient x Input,
    /// SmoothGrad, Integrated Gradients): drawn as magnitude, as Captum's `visualize_image_attr`
    /// users do with `sign="absolute_value"`; signed and near zero almost everywhere, a diverging
    /// overlay fades to the picture and looks empty.
    case pixel
    /// Smooth or region-wise maps (CAMs, occlusion, LIME, KernelSHAP, RISE).
    case region
}

/// How a map is drawn over its image.
public struct HeatmapStyle: Sendable {
    public var colormap: Colormap?
    public var sign: SignMode
    /// Values above this percentile of the shown magnitudes saturate (default 99).
    public var percentile: Double
    /// Opacity of the heatmap (default 0.5).
    public var alpha: Double
    /// The map's kind: with ``SignMode/auto``, pixel-level maps are drawn as magnitude, opaque
    /// where strong and clear where weak, so sparse evidence shows over the picture.
    public var detail: MapDetail

    public init(colormap: Colormap? = nil, sign: SignMode = .auto, percentile: Double = 99, alpha: Double = 0.5, detail: MapDetail = .region) {
        self.colormap = colormap
        self.sign = sign
        self.percentile = percentile
        self.alpha = alpha
        self.detail = detail
    }

    /// The sign mode `auto` resolves to for `map`.
    public func resolvedSign(_ map: [Float]) -> SignMode {
        guard sign == .auto else { return sign }
        if detail == .pixel { return .absolute }
        return map.contains { $0 < 0 } ? .all : .positive
    }

    /// Pixel-level magnitudes with `auto`: opacity grows with the value (none at zero, twice
    /// `alpha` capped at 1 at saturation), so the picture shows wherever the map is weak.
    var fadesWithValue: Bool { sign == .auto && detail == .pixel }

    /// Map values scaled to [0, 1] (for `all`: 0.5 is zero), and the colour map to use. NaN and
    /// infinite values are drawn as zero (the caller flags them).
    public func normalized(_ raw: [Float]) -> (values: [Double], colormap: Colormap) {
        let map = raw.map { $0.isFinite ? $0 : 0 }
        let sign = resolvedSign(map)
        let shown: [Double] = map.map {
            switch sign {
            case .positive, .auto: return Double(max($0, 0))
            case .negative: return Double(max(-$0, 0))
            case .absolute, .all: return Double(abs($0))
            }
        }
        let sorted = shown.sorted()
        let k = min(sorted.count - 1, max(0, Int((percentile / 100 * Double(sorted.count - 1)).rounded())))
        let largest = sorted.last ?? 0
        let top = sorted.isEmpty ? 1 : (sorted[k] > 0 ? sorted[k] : (largest > 0 ? largest : 1))
        if sign == .all {
            return (map.map { 0.5 + 0.5 * min(max(Double($0) / top, -1), 1) }, colormap ?? .diverging)
        }
        // Stretch from the smallest shown value, so a map with a narrow range (RISE's
        // probabilities) still shows its structure; maps that reach zero are unchanged.
        let low = fadesWithValue ? 0 : min(sorted.first ?? 0, top)
        let span = top - low > 0 ? top - low : 1
        return (shown.map { min(max(($0 - low) / span, 0), 1) }, colormap ?? .turbo)
    }

    /// `image` with `map` (`mapWidth x mapHeight`, covering `placement` of the image) blended on
    /// top; pixels outside the placement are left as they are. `outline` marks the borders of the
    /// given segments (LIME's top-K view) in yellow.
    /// - Throws: ``XAIError/shapeMismatch(op:expected:got:)`` when the map or the outline's labels do
    ///   not hold `mapWidth * mapHeight` values, ``XAIError/invalidArgument(parameter:value:reason:)``
    ///   for a style or placement that is not finite and positive.
    public func overlay(_ image: RGBImage, map: [Float], mapWidth: Int, mapHeight: Int, placement: Preprocessing.Placement,
                        outline: (labels: [Int32], segments: Set<Int32>)? = nil) throws -> RGBImage {
        guard mapWidth >= 1, mapHeight >= 1, map.count == mapWidth * mapHeight, outline.map({ $0.labels.count == map.count }) ?? true else {
            throw XAIError.shapeMismatch(op: "overlay", expected: "\(mapHeight)x\(mapWidth) map values and labels", got: [Shape([map.count])])
        }
        guard alpha >= 0, alpha <= 1 else { throw XAIError.invalidArgument(parameter: "alpha", value: "\(alpha)", reason: "must be between 0 and 1") }
        guard percentile >= 0, percentile <= 100 else {
            throw XAIError.invalidArgument(parameter: "percentile", value: "\(percentile)", reason: "must be between 0 and 100")
        }
        guard [placement.left, placement.top].allSatisfy(\.isFinite), placement.width > 0, placement.height > 0,
              placement.width.isFinite, placement.height.isFinite else {
            throw XAIError.invalidArgument(parameter: "placement", value: "\(placement)", reason: "must be a finite box of positive size")
        }
        let (values, cmap) = normalized(map)
        var out = image.pixels
        for y in 0..<image.height {
            let my = (Double(y) + 0.5 - placement.top) / placement.height * Double(mapHeight) - 0.5
            guard my > -0.5, my < Double(mapHeight) - 0.5 else { continue }
            for x in 0..<image.width {
                let mx = (Double(x) + 0.5 - placement.left) / placement.width * Double(mapWidth) - 0.5
                guard mx > -0.5, mx < Double(mapWidth) - 0.5 else { continue }
                // Bilinear sample of the normalised map.
                let y0 = min(max(Int(my.rounded(.down)), 0), mapHeight - 1), x0 = min(max(Int(mx.rounded(.down)), 0), mapWidth - 1)
                let y1 = min(y0 + 1, mapHeight - 1), x1 = min(x0 + 1, mapWidth - 1)
                let ty = min(max(my - Double(y0), 0), 1), tx = min(max(mx - Double(x0), 0), 1)
                let v = (1 - ty) * ((1 - tx) * values[y0 * mapWidth + x0] + tx * values[y0 * mapWidth + x1])
                    + ty * ((1 - tx) * values[y1 * mapWidth + x0] + tx * values[y1 * mapWidth + x1])
                var (r, g, b) = cmap.color(v)
                // Signed maps: zero (the middle of the scale) leaves the picture as it is.
                let opacity = cmap == .diverging ? alpha * min(abs(2 * v - 1), 1).squareRoot()
                    : fadesWithValue ? min(2 * alpha, 1) * v.squareRoot() : alpha
                if let outline {
                    let (ny, nx) = (Int(my.rounded()), Int(mx.rounded()))
                    let cy = min(max(ny, 0), mapHeight - 1), cx = min(max(nx, 0), mapWidth - 1)
                    let here = outline.labels[cy * mapWidth + cx]
                    let right = outline.labels[cy * mapWidth + min(cx + 1, mapWidth - 1)], down = outline.labels[min(cy + 1, mapHeight - 1) * mapWidth + cx]
                    if (here != right || here != down) && (outline.segments.contains(here) || outline.segments.contains(right) || outline.segments.contains(down)) {
                        (r, g, b) = (1, 1, 0)
                        let p = (y * image.width + x) * 3
                        out[p] = 255; out[p + 1] = 255; out[p + 2] = 0
                        continue
                    }
                }
                let p = (y * image.width + x) * 3
                out[p] = UInt8((Double(out[p]) * (1 - opacity) + 255 * r * opacity).rounded())
                out[p + 1] = UInt8((Double(out[p + 1]) * (1 - opacity) + 255 * g * opacity).rounded())
                out[p + 2] = UInt8((Double(out[p + 2]) * (1 - opacity) + 255 * b * opacity).rounded())
            }
        }
        return RGBImage(unchecked: image.width, image.height, out)
    }
}
