import Foundation
import XAICore

/// A superpixel label map: `labels[y * width + x]` in `0..<count`.
public struct SegmentMap: Sendable, Equatable {
    public let height: Int, width: Int
    public let labels: [Int32]
    public let count: Int

    /// Relabels arbitrary integer ids compactly to `0..<count` in order of first appearance.
    public init(height: Int, width: Int, ids: [Int]) throws {
        guard ids.count == height * width, height > 0, width > 0 else {
            throw XAIError.shapeMismatch(op: "segments", expected: "\(height * width) labels for a \(height)x\(width) image", got: [Shape([ids.count])])
        }
        var compact: [Int: Int32] = [:]
        var labels = [Int32](repeating: 0, count: ids.count)
        for (i, id) in ids.enumerated() {
            if let c = compact[id] { labels[i] = c } else {
                let c = Int32(compact.count)
                compact[id] = c
                labels[i] = c
            }
        }
        self.height = height
        self.width = width
        self.labels = labels
        count = compact.count
    }

    /// The labels as an `[H, W]` float tensor (the layout the mask kernels read).
    public var tensor: Tensor { Tensor(unchecked: [height, width], labels.map(Float.init)) }

    /// Pixels per segment.
    public var sizes: [Int] {
        var s = [Int](repeating: 0, count: count)
        for l in labels { s[Int(l)] += 1 }
        return s
    }
}

/// How segment-based methods (LIME, KernelSHAP) split an image into features.
public enum Segmentation: Sendable {
    /// SLIC superpixels in CIELAB (scikit-image's algorithm and defaults).
    case slic(SLIC)
    /// Quickshift mode seeking (lime's default segmentation).
    case quickshift(Quickshift)
    /// Felzenszwalb and Huttenlocher's graph-based segmentation.
    case felzenszwalb(Felzenszwalb)
    /// A regular grid of `rows x columns` rectangles.
    case grid(rows: Int, columns: Int)
    /// A user label map `[H, W]` (every image) or `[N, H, W]` (one per image), any integer ids.
    case labels(Tensor)

    /// The segments of image `index` of a batch, `image` being that `[1, C, H, W]` image.
    public func segment(_ image: Tensor, index: Int) throws -> SegmentMap {
        let (h, w) = (image.shape[2], image.shape[3])
        switch self {
        case .slic(let s): return try s.segment(image)
        case .quickshift(let q): return try q.segment(image)
        case .felzenszwalb(let f): return try f.segment(image)
        case .grid(let rows, let columns):
            guard rows >= 1, columns >= 1, rows <= h, columns <= w else {
                throw XAIError.invalidArgument(parameter: "segments", value: "\(rows)x\(columns)", reason: "the grid does not fit a \(h)x\(w) image")
            }
            return try SegmentMap(height: h, width: w, ids: (0..<(h * w)).map { p in (p / w) * rows / h * columns + (p % w) * columns / w })
        case .labels(let t):
            let plane = h * w
            let spatial = Array(t.shape.dims.suffix(2))
            guard spatial == [h, w], t.shape.rank == 2 || (t.shape.rank == 3 && index < t.shape[0]) else {
                throw XAIError.shapeMismatch(op: "featureMask", expected: "a label map [\(h), \(w)] or [N, \(h), \(w)] for image \(index)", got: [t.shape])
            }
            let offset = t.shape.rank == 2 ? 0 : index * plane
            let ids = try Tensor(unchecked: [plane], Array(t.scalars[offset..<(offset + plane)])).integers("featureMask")
            return try SegmentMap(height: h, width: w, ids: ids)
        }
    }
}

/// SLIC superpixels (Achanta et al.) as scikit-image computes them: the image is rescaled to
/// [0, 1], converted to CIELAB, seeded on a regular grid, clustered by k-means in (Lab /
/// compactness, position / step) space within a 2-step window of each centre, and finally made
/// connected (components under half the mean segment size merge into a neighbour).
public struct SLIC: Sendable {
    public var segments: Int
    public var compactness: Double
    public var iterations: Int
    /// Gaussian pre-smoothing in pixels (0: none).
    public var sigma: Float
    public var enforceConnectivity: Bool
    public var minSizeFactor: Double
    public var maxSizeFactor: Double

    /// scikit-image's defaults: 100 segments, compactness 10, 10 iterations, no smoothing.
    public init(segments: Int = 100, compactness: Double = 10, iterations: Int = 10, sigma: Float = 0,
                enforceConnectivity: Bool = true, minSizeFactor: Double = 0.5, maxSizeFactor: Double = 3) {
        self.segments = segments
        self.compactness = compactness
        self.iterations = iterations
        self.sigma = sigma
        self.enforceConnectivity = enforceConnectivity
        self.minSizeFactor = minSizeFactor
        self.maxSizeFactor = maxSizeFactor
    }

    /// Grid seeds like scikit-image's `regular_grid` over (1, H, W): per-axis steps of about
    /// `(H W / n)^(1/2)`, starting half a step in.
    static func seeds(height: Int, width: Int, count: Int) -> (ys: [Int], xs: [Int], step: Double) {
        let dims = [1.0, Double(height), Double(width)]
        let order = dims.indices.sorted { dims[$0] < dims[$1] }
        let sorted = order.map { dims[$0] }
        let space = dims.reduce(1, *)
        if space <= Double(count) { return (Array(0..<height), Array(0..<width), 1) }
        var steps = [Double](repeating: pow(space / Double(count), 1.0 / 3), count: 3)
        if zip(sorted, steps).contains(where: { $0 < $1 }) {
            for d in 0..<3 {
                steps[d] = sorted[d]
                let rest = sorted[(d + 1)...].reduce(1, *)
                for e in (d + 1)..<3 { steps[e] = pow(rest / Double(count), 1.0 / Double(3 - d - 1)) }
                if !zip(sorted, steps).contains(where: { $0 < $1 }) { break }
            }
        }
        var bySortedAxis = [Double](repeating: 0, count: 3)
        for (k, axis) in order.enumerated() { bySortedAxis[axis] = steps[k] }
        func positions(_ axis: Int, _ size: Int) -> [Int] {
            let start = Int(bySortedAxis[axis] / 2)
            let step = max(1, Int(bySortedAxis[axis].rounded(.toNearestOrEven)))
            return Array(stride(from: start, to: size, by: step))
        }
        let stepY = max(1, Int(bySortedAxis[1].rounded(.toNearestOrEven))), stepX = max(1, Int(bySortedAxis[2].rounded(.toNearestOrEven)))
        return (positions(1, height), positions(2, width), Double(max(stepY, stepX)))
    }

    /// Segments `image` (`[1, C, H, W]` or `[C, H, W]`; three channels are taken as RGB).
    public func segment(_ image: Tensor) throws -> SegmentMap {
        try image.requireFinite("image to segment")
        guard segments >= 1, segments <= 1 << 24, compactness > 0, compactness.isFinite, iterations >= 1, sigma.isFinite else {
            throw XAIError.invalidArgument(parameter: "segments", value: "\(segments)", reason: "SLIC needs segments >= 1, compactness > 0 and iterations >= 1")
        }
        let dims = image.shape.dims.suffix(3)
        let (c, h, w) = (dims[dims.startIndex], dims[dims.startIndex + 1], dims[dims.startIndex + 2])
        var pixels = image.scalars
        if sigma > 0 { pixels = try gaussianBlur(Tensor(unchecked: [1, c, h, w], pixels), sigma: sigma).scalars }
        // Rescale to [0, 1] over the whole image, then Lab for colour images.
        let lo = pixels.min() ?? 0, hi = pixels.max() ?? 0
        let scale = hi > lo ? 1 / Double(hi - lo) : 0
        let plane = h * w
        var features = [Double](repeating: 0, count: plane * c)  // pixel-major
        for p in 0..<plane {
            var v = (0..<c).map { Double(pixels[$0 * plane + p] - lo) * scale }
            if c == 3 { v = rgbToLab(v[0], v[1], v[2]) }
            for k in 0..<c { features[p * c + k] = v[k] / compactness }
        }
        let (ys, xs, step) = Self.seeds(height: h, width: w, count: segments)
        let k = ys.count * xs.count
        // Centres: (y, x, colour...). Colours start at zero, as in scikit-image.
        var centres = [Double](repeating: 0, count: k * (2 + c))
        for (i, y) in ys.enumerated() {
            for (j, x) in xs.enumerated() {
                centres[(i * xs.count + j) * (2 + c)] = Double(y)
                centres[(i * xs.count + j) * (2 + c) + 1] = Double(x)
            }
        }
        var nearest = [Int](repeating: 0, count: plane)
        var distance = [Double](repeating: .infinity, count: plane)
        let spatialWeight = 1 / (step * step)
        let reach = 2 * step
        for _ in 0..<iterations {
            for p in 0..<plane { distance[p] = .infinity }
            var changed = false
            for s in 0..<k {
                let cy = centres[s * (2 + c)], cx = centres[s * (2 + c) + 1]
                guard !cy.isNaN else { continue }
                let y0 = Int(max(cy - reach, 0)), y1 = Int(min(cy + reach + 1, Double(h)))
                let x0 = Int(max(cx - reach, 0)), x1 = Int(min(cx + reach + 1, Double(w)))
                guard y0 < y1, x0 < x1 else { continue }
                for y in y0..<y1 {
                    let dy = Double(y) - cy
                    for x in x0..<x1 {
                        let dx = Double(x) - cx
                        var d = (dy * dy + dx * dx) * spatialWeight
                        let p = y * w + x
                        for ch in 0..<c {
                            let t = features[p * c + ch] - centres[s * (2 + c) + 2 + ch]
                            d += t * t
                        }
                        if distance[p] > d {
                            if nearest[p] != s { changed = true }
                            nearest[p] = s
                            distance[p] = d
                        }
                    }
                }
            }
            // New centres: the mean position and colour of their pixels.
            var sums = [Double](repeating: 0, count: k * (2 + c)), counts = [Double](repeating: 0, count: k)
            for p in 0..<plane {
                let s = nearest[p]
                counts[s] += 1
                sums[s * (2 + c)] += Double(p / w)
                sums[s * (2 + c) + 1] += Double(p % w)
                for ch in 0..<c { sums[s * (2 + c) + 2 + ch] += features[p * c + ch] }
            }
            for s in 0..<k {
                // An emptied cluster is dropped (scikit-image's centre becomes NaN and never wins).
                for f in 0..<(2 + c) { centres[s * (2 + c) + f] = counts[s] > 0 ? sums[s * (2 + c) + f] / counts[s] : .nan }
            }
            if !changed { break }
        }
        guard enforceConnectivity else { return try SegmentMap(height: h, width: w, ids: nearest) }
        let meanSize = Double(plane) / Double(k)
        return try SegmentMap(height: h, width: w, ids: connected(nearest, height: h, width: w,
                                                                    minSize: Int(minSizeFactor * meanSize), maxSize: Int(maxSizeFactor * meanSize)))
    }

    /// Relabels 4-connected components in raster order, as scikit-image does: a component smaller
    /// than `minSize` takes the label of the last already relabelled neighbour its search met (or
    /// stays with the next new label), and a component stops growing at `maxSize` pixels.
    func connected(_ labels: [Int], height h: Int, width w: Int, minSize: Int, maxSize: Int) -> [Int] {
        var out = [Int](repeating: -1, count: labels.count)
        var next = 0
        var queue: [Int] = []
        queue.reserveCapacity(labels.count)
        for start in 0..<labels.count where out[start] < 0 {
            var adjacent = next
            queue.removeAll(keepingCapacity: true)
            queue.append(start)
            out[start] = next
            var head = 0
            search: while head < queue.count && queue.count < maxSize {
                let p = queue[head]
                head += 1
                let py = p / w, px = p % w
                for q in [px + 1 < w ? p + 1 : -1, px > 0 ? p - 1 : -1, py + 1 < h ? p + w : -1, py > 0 ? p - w : -1] where q >= 0 {
                    if labels[q] == labels[start] && out[q] < 0 {
                        out[q] = next
                        queue.append(q)
                        if queue.count >= maxSize { break search }
                    } else if out[q] >= 0 && out[q] != next {
                        adjacent = out[q]
                    }
                }
            }
            if queue.count < minSize {
                for p in queue { out[p] = adjacent }
            } else {
                next += 1
            }
        }
        return out
    }
}

/// sRGB in [0, 1] to CIELAB under D65 (scikit-image's `rgb2lab` conventions).
func rgbToLab(_ r: Double, _ g: Double, _ b: Double) -> [Double] {
    func linear(_ v: Double) -> Double { v > 0.04045 ? pow((v + 0.055) / 1.055, 2.4) : v / 12.92 }
    let (lr, lg, lb) = (linear(r), linear(g), linear(b))
    let x = (0.412453 * lr + 0.357580 * lg + 0.180423 * lb) / 0.95047
    let y = 0.212671 * lr + 0.715160 * lg + 0.072169 * lb
    let z = (0.019334 * lr + 0.119193 * lg + 0.950227 * lb) / 1.08883
    func f(_ t: Double) -> Double { t > 0.008856 ? cbrt(t) : 7.787 * t + 16.0 / 116.0 }
    let (fx, fy, fz) = (f(x), f(y), f(z))
    return [116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)]
}

/// An image as pixel-major values in [0, 1]: `values[p * channels + c]`. `range` maps to [0, 1]
/// (scikit-image's `img_as_float` uses the type's range, e.g. 0...255 for bytes); without it the
/// image's own minimum and maximum do.
func unitPixels(_ image: Tensor, range: ClosedRange<Float>?) -> (channels: Int, height: Int, width: Int, values: [Double]) {
    let dims = image.shape.dims.suffix(3)
    let (c, h, w) = (dims[dims.startIndex], dims[dims.startIndex + 1], dims[dims.startIndex + 2])
    let lo = range?.lowerBound ?? image.scalars.min() ?? 0, hi = range?.upperBound ?? image.scalars.max() ?? 0
    let scale = hi > lo ? 1 / Double(hi - lo) : 0
    let plane = h * w
    var values = [Double](repeating: 0, count: plane * c)
    for p in 0..<plane { for k in 0..<c { values[p * c + k] = Double(image.scalars[k * plane + p] - lo) * scale } }
    return (c, h, w, values)
}

/// Quickshift (Vedaldi and Soatto) as scikit-image computes it: a Parzen density in (colour *
/// ratio, position) space with a Gaussian of `kernelSize` pixels over a window of 3 kernel sizes,
/// each pixel linked to its nearest denser neighbour within the window unless that is farther than
/// `maxDistance`; the trees are the segments. Colours are CIELAB for three channels. Ties in
/// density are broken by tiny seeded noise (scikit-image draws its own, so tie pixels can differ).
public struct Quickshift: Sendable {
    public var kernelSize: Double
    public var maxDistance: Double
    public var ratio: Double
    /// Value range of the input mapped to [0, 1]; `nil`: the image's min and max.
    public var valueRange: ClosedRange<Float>?
    public var seed: UInt64

    /// lime's defaults: kernel 4, max distance 200, ratio 0.2.
    public init(kernelSize: Double = 4, maxDistance: Double = 200, ratio: Double = 0.2, valueRange: ClosedRange<Float>? = nil, seed: UInt64 = 42) {
        self.kernelSize = kernelSize
        self.maxDistance = maxDistance
        self.ratio = ratio
        self.valueRange = valueRange
        self.seed = seed
    }

    public func segment(_ image: Tensor) throws -> SegmentMap {
        try image.requireFinite("image to segment")
        guard kernelSize >= 1, kernelSize <= 1000, maxDistance >= 0, maxDistance.isFinite, ratio >= 0, ratio.isFinite else {
            throw XAIError.invalidArgument(parameter: "segmentation", value: "quickshift", reason: "needs kernel size >= 1, max distance >= 0 and ratio >= 0")
        }
        var (c, h, w, values) = unitPixels(image, range: valueRange)
        if c == 3 {
            for p in 0..<(h * w) {
                let lab = rgbToLab(values[3 * p], values[3 * p + 1], values[3 * p + 2])
                for k in 0..<3 { values[3 * p + k] = lab[k] }
            }
        }
        for i in values.indices { values[i] *= ratio }
        let reach = Int((3 * kernelSize).rounded(.up))
        let inverse = -0.5 / (kernelSize * kernelSize)
        var rng = SeededGenerator(seed: seed)
        var density = (0..<(h * w)).map { _ in 1e-5 * Double(rng.nextGaussian()) }
        func distance(_ p: Int, _ q: Int) -> Double {
            var d = 0.0
            for k in 0..<c { let t = values[p * c + k] - values[q * c + k]; d += t * t }
            let dy = Double(p / w - q / w), dx = Double(p % w - q % w)
            return d + dy * dy + dx * dx
        }
        func window(_ p: Int, _ body: (Int) -> Void) {
            let (y, x) = (p / w, p % w)
            for yy in max(y - reach, 0)..<min(y + reach + 1, h) { for xx in max(x - reach, 0)..<min(x + reach + 1, w) { body(yy * w + xx) } }
        }
        for p in 0..<(h * w) { window(p) { q in density[p] += exp(distance(p, q) * inverse) } }
        var parent = Array(0..<(h * w))
        for p in 0..<(h * w) {
            var closest = Double.infinity
            window(p) { q in
                guard density[q] > density[p] else { return }
                let d = distance(p, q)
                if d < closest { closest = d; parent[p] = q }
            }
            if closest.squareRoot() > maxDistance { parent[p] = p }
        }
        for p in 0..<(h * w) {
            var r = p
            while parent[r] != r { r = parent[r] }
            parent[p] = r
        }
        return try SegmentMap(height: h, width: w, ids: parent)
    }
}

/// Felzenszwalb and Huttenlocher's graph segmentation as scikit-image computes it: the image is
/// smoothed by a Gaussian of `sigma`, pixels are joined over their 8-neighbour edges (colour
/// distance) in order of weight while the edge is lighter than both regions' internal difference
/// plus `scale / 255 / size`, then regions under `minSize` pixels merge along the lightest edges.
public struct Felzenszwalb: Sendable {
    public var scale: Double
    public var sigma: Float
    public var minSize: Int
    /// Value range of the input mapped to [0, 1]; `nil`: the image's min and max.
    public var valueRange: ClosedRange<Float>?

    /// scikit-image's defaults: scale 1, sigma 0.8, min size 20.
    public init(scale: Double = 1, sigma: Float = 0.8, minSize: Int = 20, valueRange: ClosedRange<Float>? = nil) {
        self.scale = scale
        self.sigma = sigma
        self.minSize = minSize
        self.valueRange = valueRange
    }

    public func segment(_ image: Tensor) throws -> SegmentMap {
        try image.requireFinite("image to segment")
        guard scale > 0, scale.isFinite, sigma >= 0, sigma.isFinite, minSize >= 0 else {
            throw XAIError.invalidArgument(parameter: "segmentation", value: "felzenszwalb", reason: "needs scale > 0, sigma >= 0 and min size >= 0")
        }
        let (c, h, w, unit) = unitPixels(image, range: valueRange)
        // Smooth channel by channel (blur works on planar [1, C, H, W]).
        var planar = [Float](repeating: 0, count: unit.count)
        for p in 0..<(h * w) { for k in 0..<c { planar[k * h * w + p] = Float(unit[p * c + k]) } }
        let smooth = try gaussianBlur(Tensor(unchecked: [1, c, h, w], planar), sigma: sigma).scalars
        func cost(_ p: Int, _ q: Int) -> Double {
            var d = 0.0
            for k in 0..<c { let t = Double(smooth[k * h * w + p]) - Double(smooth[k * h * w + q]); d += t * t }
            return d.squareRoot()
        }
        // Edges right, down, down-right and up-right, as scikit-image lists them.
        var edges: [(Int, Int)] = []
        for y in 0..<h { for x in 1..<w { edges.append((y * w + x, y * w + x - 1)) } }
        for y in 1..<h { for x in 0..<w { edges.append((y * w + x, (y - 1) * w + x)) } }
        for y in 1..<h { for x in 1..<w { edges.append((y * w + x, (y - 1) * w + x - 1)) } }
        for y in 0..<(h - 1) { for x in 1..<w { edges.append((y * w + x, (y + 1) * w + x - 1)) } }
        let weights = edges.map { cost($0.0, $0.1) }
        let order = edges.indices.sorted { weights[$0] < weights[$1] || (weights[$0] == weights[$1] && $0 < $1) }
        var forest = Array(0..<(h * w)), size = [Int](repeating: 1, count: h * w), difference = [Double](repeating: 0, count: h * w)
        func root(_ n: Int) -> Int {
            var r = n
            while forest[r] != r { r = forest[r] }
            var m = n
            while forest[m] != r { let next = forest[m]; forest[m] = r; m = next }
            return r
        }
        func join(_ a: Int, _ b: Int) -> Int {
            let r = min(a, b)
            forest[a] = r; forest[b] = r
            size[r] = size[a] + size[b]
            return r
        }
        let k = scale / 255
        for e in order {
            let (a, b) = (root(edges[e].0), root(edges[e].1))
            guard a != b else { continue }
            if weights[e] < min(difference[a] + k / Double(size[a]), difference[b] + k / Double(size[b])) {
                difference[join(a, b)] = weights[e]
            }
        }
        for e in order {
            let (a, b) = (root(edges[e].0), root(edges[e].1))
            if a != b && (size[a] < minSize || size[b] < minSize) { _ = join(a, b) }
        }
        return try SegmentMap(height: h, width: w, ids: (0..<(h * w)).map(root))
    }
}
