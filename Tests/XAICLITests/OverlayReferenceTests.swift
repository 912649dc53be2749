import Foundation
import XCTest
import XAI
import XAITestSupport
@testable import XAIImage

/// The overlay against references (Tools/make_overlay_fixtures.py): the colour maps against
/// matplotlib's, the map's resampling onto the picture against torch's `grid_sample` (bilinear,
/// align_corners=False, border padding) for the whole picture and a crop placement, and each
/// drawn pixel against its definition: `round(p (1 - a) + 255 c a)` with `c` the colour of the
/// resampled, normalised map value.
final class OverlayReferenceTests: XCTestCase {
    struct Fixture: Decodable {
        struct Placement: Decodable { let left, top, width, height: Double; let samples: [[Double?]] }
        let t: [Double]
        let colormaps: [String: [[Double]]]
        let map: [[Double]]
        let image: [Int]
        let placements: [Placement]
    }

    func fixture() throws -> Fixture {
        try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: URL(fileURLWithPath: fixturesDirectory + "/overlay/overlay.json")))
    }

    /// The largest channel difference to matplotlib, per map: the ramps interpolate 33 of
    /// matplotlib's 256 entries (whose own lookup is piecewise constant), jet follows its segment
    /// points. (Before: 10-stop ramps, a polynomial turbo and MATLAB's jet were 15 to 32 levels off.)
    func testColormapsFollowMatplotlib() throws {
        let f = try fixture()
        let tolerance: [Colormap: Double] = [.viridis: 0.011, .inferno: 0.016, .turbo: 0.021, .jet: 0.02]
        for (map, limit) in tolerance {
            let reference = try XCTUnwrap(f.colormaps[map.rawValue])
            var worst = 0.0
            for (t, rgb) in zip(f.t, reference) {
                let c = map.color(t)
                worst = max(worst, abs(c.0 - rgb[0]), abs(c.1 - rgb[1]), abs(c.2 - rgb[2]))
            }
            XCTAssertLessThanOrEqual(worst, limit, "\(map) against matplotlib")
        }
        // The diverging map: blue, white at zero (0.5), red; outside [0, 1] and NaN clamp.
        XCTAssertEqual(Colormap.diverging.color(0.5).0, 1, accuracy: 1e-12)
        XCTAssertEqual(Colormap.diverging.color(0.5).2, 1, accuracy: 1e-12)
        XCTAssertGreaterThan(Colormap.diverging.color(0).2, Colormap.diverging.color(0).0)
        XCTAssertGreaterThan(Colormap.diverging.color(1).0, Colormap.diverging.color(1).2)
        for map in Colormap.allCases {
            XCTAssertTrue(map.color(-3) == map.color(0) && map.color(7) == map.color(1) && map.color(.nan) == map.color(0), "\(map) clamps")
        }
    }

    func testResamplingMatchesTorchGridSample() throws {
        let f = try fixture()
        let (mapH, mapW) = (f.map.count, f.map[0].count)
        let values = f.map.flatMap { $0 }
        let (imageH, imageW) = (f.image[0], f.image[1])
        for p in f.placements {
            var covered = 0
            for y in 0..<imageH {
                let my = HeatmapStyle.mapCoordinate(y, start: p.top, extent: p.height, size: mapH)
                for x in 0..<imageW {
                    let mx = HeatmapStyle.mapCoordinate(x, start: p.left, extent: p.width, size: mapW)
                    let inside = my > -0.5 && my < Double(mapH) - 0.5 && mx > -0.5 && mx < Double(mapW) - 0.5
                    guard let expected = p.samples[y][x] else {
                        XCTAssertFalse(inside, "(\(x), \(y)) lies outside the map in the reference")
                        continue
                    }
                    XCTAssertTrue(inside, "(\(x), \(y)) lies on the map in the reference")
                    covered += 1
                    let got = HeatmapStyle.bilinear(values, mapWidth: mapW, mapHeight: mapH, mx: mx, my: my)
                    XCTAssertEqual(got, expected, accuracy: 1e-12, "(\(x), \(y)), placement \(p.left), \(p.top), \(p.width)x\(p.height)")
                }
            }
            XCTAssertGreaterThan(covered, 300)
        }
    }

    /// Every pixel of an overlay from its definition, for an unsigned map (turbo, stretched from
    /// its smallest value, the 99th percentile saturating) over a random picture and a crop.
    func testEachPixelIsTheBlendOfThePictureAndTheColour() throws {
        let f = try fixture()
        let (mapH, mapW) = (f.map.count, f.map[0].count)
        let map = f.map.flatMap { $0 }.map { Float($0) }
        let (imageH, imageW) = (f.image[0], f.image[1])
        var g = SeededGenerator(seed: 12)
        let picture = try RGBImage(width: imageW, height: imageH, pixels: (0..<(imageW * imageH * 3)).map { _ in UInt8(g.next() % 256) })
        let p = f.placements[1]
        // A region map (auto: the positive part, a constant opacity) and a pixel-level one (auto:
        // the magnitude, opacity min(2 alpha, 1) sqrt(v), no stretch from the minimum).
        for detail in [MapDetail.region, .pixel] {
        let style = HeatmapStyle(colormap: .viridis, sign: .auto, percentile: 90, alpha: 0.6, detail: detail)
        let out = try style.overlay(picture, map: map, mapWidth: mapW, mapHeight: mapH,
                                    placement: .init(left: p.left, top: p.top, width: p.width, height: p.height))
        // The normalisation by hand: 90th percentile by nearest rank, stretched from the minimum.
        let sorted = map.map(Double.init).sorted()
        let top = sorted[Int((0.9 * Double(sorted.count - 1)).rounded())], low = detail == .pixel ? 0 : sorted[0]
        let normalised = map.map { min(max((Double($0) - low) / (top - low), 0), 1) }
        for y in 0..<imageH {
            for x in 0..<imageW {
                let i = (y * imageW + x) * 3
                guard p.samples[y][x] != nil else {
                    XCTAssertEqual(Array(out.pixels[i..<(i + 3)]), Array(picture.pixels[i..<(i + 3)]), "(\(x), \(y)) outside the map is untouched")
                    continue
                }
                // The normalised map resampled (the resampling itself is checked against torch above).
                let my = HeatmapStyle.mapCoordinate(y, start: p.top, extent: p.height, size: mapH)
                let mx = HeatmapStyle.mapCoordinate(x, start: p.left, extent: p.width, size: mapW)
                let v = HeatmapStyle.bilinear(normalised, mapWidth: mapW, mapHeight: mapH, mx: mx, my: my)
                let c = Colormap.viridis.color(v)
                let opacity = detail == .pixel ? min(2 * 0.6, 1) * v.squareRoot() : 0.6
                for (k, channel) in [c.0, c.1, c.2].enumerated() {
                    let expected = UInt8((Double(picture.pixels[i + k]) * (1 - opacity) + 255 * channel * opacity).rounded())
                    XCTAssertEqual(out.pixels[i + k], expected, "(\(x), \(y)) channel \(k), \(detail)")
                }
            }
        }
        }
    }
}
