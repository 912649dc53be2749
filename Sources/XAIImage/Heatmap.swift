import Foundation
import XAICore

/// Colour maps for heatmaps: matplotlib's, so an overlay looks as it would there (checked against
/// matplotlib by OverlayReferenceTests).
public enum Colormap: String, Sendable, CaseIterable {
    case jet, viridis, inferno, turbo
    /// Blue - white - red, for signed maps (0.5 is zero).
    case diverging

    // 33 evenly spaced entries of matplotlib's tables (viridis and inferno: CC0; turbo: Google's,
    // Apache-2.0), interpolated linearly: within 2.4, 3.7 and 5.1 levels of 255 of matplotlib.
    static let viridisTable: [(Double, Double, Double)] = [
        (68, 1, 84), (71, 13, 96), (72, 24, 106), (72, 35, 116), (71, 45, 123), (69, 55, 129), (66, 64, 134), (62, 73, 137), (59, 82, 139),
        (55, 91, 141), (51, 99, 141), (47, 107, 142), (44, 114, 142), (41, 122, 142), (38, 130, 142), (35, 137, 142), (33, 145, 140),
        (31, 152, 139), (31, 160, 136), (34, 167, 133), (40, 174, 128), (50, 182, 122), (63, 188, 115), (78, 195, 107), (94, 201, 98),
        (112, 207, 87), (132, 212, 75), (152, 216, 62), (173, 220, 48), (194, 223, 35), (216, 226, 25), (236, 229, 27), (253, 231, 37),
    ]
    static let infernoTable: [(Double, Double, Double)] = [
        (0, 0, 4), (4, 3, 18), (11, 7, 36), (21, 11, 55), (33, 12, 74), (47, 10, 91), (61, 9, 101), (74, 12, 107), (87, 16, 110), (100, 21, 110),
        (113, 25, 110), (125, 30, 109), (138, 34, 106), (151, 39, 102), (163, 44, 97), (176, 49, 91), (188, 55, 84), (199, 62, 76),
        (210, 70, 68), (219, 80, 59), (228, 90, 49), (235, 102, 40), (241, 115, 29), (246, 128, 19), (249, 142, 9), (251, 157, 7),
        (252, 172, 17), (251, 188, 33), (249, 203, 53), (245, 219, 76), (242, 234, 105), (243, 246, 138), (252, 255, 164),
    ]
    static let turboTable: [(Double, Double, Double)] = [
        (48, 18, 59), (57, 42, 115), (64, 64, 162), (68, 86, 199), (70, 107, 227), (70, 128, 246), (66, 148, 255), (55, 168, 250),
        (40, 188, 235), (28, 205, 216), (24, 221, 194), (31, 233, 175), (50, 242, 152), (78, 249, 125), (109, 254, 98), (139, 255, 75),
        (164, 252, 60), (185, 246, 53), (205, 236, 52), (223, 223, 55), (238, 207, 58), (248, 190, 57), (253, 172, 52), (254, 150, 43),
        (251, 126, 33), (244, 102, 23), (235, 80, 14), (223, 63, 8), (208, 47, 5), (190, 33, 2), (169, 22, 1), (146, 11, 1), (122, 4, 3),
    ]

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
            // matplotlib's jet, piecewise linear through its segment points.
            func segments(_ points: [(Double, Double)]) -> Double {
                guard let k = points.indices.dropFirst().first(where: { x <= points[$0].0 }) else { return points[points.count - 1].1 }
                let (a, b) = (points[k - 1], points[k])
                return a.1 + (x - a.0) / (b.0 - a.0) * (b.1 - a.1)
            }
            return (segments([(0, 0), (0.35, 0), (0.66, 1), (0.89, 1), (1, 0.5)]),
                    segments([(0, 0), (0.125, 0), (0.375, 1), (0.64, 1), (0.91, 0), (1, 0)]),
                    segments([(0, 0.5), (0.11, 1), (0.34, 1), (0.65, 0), (1, 0)]))
        case .viridis:
            return ramp(Self.viridisTable)
        case .inferno:
            return ramp(Self.infernoTable)
        case .turbo:
            return ramp(Self.turboTable)
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

    /// Where the centre of picture pixel `i` falls on a map of `size` cells covering
    /// `[start, start + extent)` of the picture, in cell units with cell centres at integers (the
    /// convention of torch's `interpolate(align_corners=False)` and `grid_sample`).
    static func mapCoordinate(_ i: Int, start: Double, extent: Double, size: Int) -> Double {
        (Double(i) + 0.5 - start) / extent * Double(size) - 0.5
    }

    /// The bilinear sample of `values` (`height x width`, row-major) at `(x, y)`, clamped to the
    /// border cells (torch's `grid_sample` with `padding_mode="border"`).
    static func bilinear(_ values: [Double], mapWidth: Int, mapHeight: Int, mx: Double, my: Double) -> Double {
        let y0 = min(max(Int(my.rounded(.down)), 0), mapHeight - 1), x0 = min(max(Int(mx.rounded(.down)), 0), mapWidth - 1)
        let y1 = min(y0 + 1, mapHeight - 1), x1 = min(x0 + 1, mapWidth - 1)
        let ty = min(max(my - Double(y0), 0), 1), tx = min(max(mx - Double(x0), 0), 1)
        let v = (1 - ty) * ((1 - tx) * values[y0 * mapWidth + x0] + tx * values[y0 * mapWidth + x1])
            + ty * ((1 - tx) * values[y1 * mapWidth + x0] + tx * values[y1 * mapWidth + x1])
        return v
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
            let my = Self.mapCoordinate(y, start: placement.top, extent: placement.height, size: mapHeight)
            guard my > -0.5, my < Double(mapHeight) - 0.5 else { continue }
            for x in 0..<image.width {
                let mx = Self.mapCoordinate(x, start: placement.left, extent: placement.width, size: mapWidth)
                guard mx > -0.5, mx < Double(mapWidth) - 0.5 else { continue }
                let v = Self.bilinear(values, mapWidth: mapWidth, mapHeight: mapHeight, mx: mx, my: my)
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
