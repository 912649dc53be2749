import Foundation
import XAI

/// A value computed on another thread, started at once; `wait()` returns it.
final class Prefetched<Value: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var value: Value?

    init(_ make: @escaping @Sendable () -> Value) {
        DispatchQueue.global(qos: .userInitiated).async {
            self.value = make()
            self.done.signal()
        }
    }

    /// The value (set before the signal; `nil` never comes back in practice).
    func wait() -> Value? {
        done.wait()
        done.signal()  // a second wait returns at once
        return value
    }
}

/// Writes an explanation run's outputs (overlays, arrays, `results.jsonl` lines) on one background
/// thread, in the order they were submitted, while the next images are explained. At most
/// `pending` jobs wait at a time (a submit blocks until one finishes), so memory stays bounded
/// however long the run. A job's error is kept for the caller to report; the run goes on.
final class OutputWriter: @unchecked Sendable {
    private let queue = DispatchQueue(label: "xai.output-writer")
    private let slots: DispatchSemaphore
    private let lock = NSLock()
    private var failures: [String] = []
    private var count = 0
    private let results: OutputFile
    private let encoder = jsonLinesEncoder()
    private let describe: (Error) -> String

    init(results: OutputFile, pending: Int, describe: @escaping (Error) -> String = { "\($0)" }) {
        self.results = results
        self.describe = describe
        slots = DispatchSemaphore(value: max(pending, 1))
    }

    /// Runs `job` on the writer's thread; `label` names it in an error.
    func submit(_ label: String, _ job: @escaping () throws -> Void) {
        slots.wait()
        let box = UncheckedSendable(job)
        queue.async {
            defer { self.slots.signal() }
            do { try box.value() } catch {
                self.lock.lock(); self.failures.append("\(label): \(self.describe(error))"); self.lock.unlock()
            }
        }
    }

    /// Runs `make` on the writer's thread and appends the record it returns to `results.jsonl`.
    func submit(_ label: String, record make: @escaping () throws -> ResultRecord) {
        submit(label, { () throws -> Void in
            let record = try make()
            try self.results.write(try self.encoder.encode(record) + Data("\n".utf8))
            self.lock.lock(); self.count += 1; self.lock.unlock()
        })
    }

    /// Errors of finished jobs not yet taken.
    func takeFailures() -> [String] {
        lock.lock(); defer { lock.unlock() }
        let taken = failures
        failures = []
        return taken
    }

    /// Records written so far.
    var written: Int {
        lock.lock(); defer { lock.unlock() }
        return count
    }

    /// Waits for every submitted job.
    func drain() { queue.sync {} }
}

/// A line on standard error.
public func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
