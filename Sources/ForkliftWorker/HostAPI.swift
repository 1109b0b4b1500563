import CFastCGI
import CForkliftABI
import CForkliftSys
import ForkliftLogging
import Logging

/// The host's side of the ABI: C functions a plugin calls back into. Each is a closure
/// without captures, so Swift turns it into a plain C function pointer. The opaque
/// `forklift_request`/`forklift_response` pointers are unretained references to the
/// worker's `RequestBridge`/`ResponseBridge`, valid for one handle() call.
enum HostAPI {
    static func make() -> forklift_host_api {
        var api = forklift_host_api()
        api.abi_version = FORKLIFT_ABI_VERSION
        api.struct_size = UInt32(MemoryLayout<forklift_host_api>.size)
        api.log = { api, level, message, length in
            guard let api, let message, let context = api.pointee.host_context else { return }
            let plugin = Unmanaged<PluginInstance>.fromOpaque(context).takeUnretainedValue()
            let text = String(decoding: UnsafeRawBufferPointer(start: message, count: length), as: UTF8.self)
            ForkliftLogging.logger.log(level: HostAPI.logLevel(level), "\(text)", metadata: ["plugin": "\(plugin.settings.name)"])
        }
        api.request_param = { request, name in
            guard let request, let name else { return nil }
            return UnsafePointer(FCGX_GetParam(name, RequestBridge.from(request).envp))
        }
        api.request_path = { request in
            guard let request else { return nil }
            return UnsafePointer(RequestBridge.from(request).path)
        }
        api.request_params = { request in
            guard let request else { return nil }
            return UnsafeRawPointer(RequestBridge.from(request).envp)?.assumingMemoryBound(to: UnsafePointer<CChar>?.self)
        }
        api.request_read = { request, buffer, capacity in
            guard let request, let buffer else { return -1 }
            return RequestBridge.from(request).read(into: buffer, capacity: capacity)
        }
        api.response_set_status = { response, status in
            guard let response else { return Int32(FORKLIFT_FAILED) }
            return ResponseBridge.from(response).setStatus(Int(status)) ? Int32(FORKLIFT_OK) : Int32(FORKLIFT_FAILED)
        }
        api.response_add_header = { response, name, value in
            guard let response, let name, let value else { return Int32(FORKLIFT_FAILED) }
            let ok = ResponseBridge.from(response).addHeader(String(cString: name), String(cString: value))
            return ok ? Int32(FORKLIFT_OK) : Int32(FORKLIFT_FAILED)
        }
        api.response_write = { response, data, length in
            guard let response else { return Int32(FORKLIFT_FAILED) }
            let bytes = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : length)
            return ResponseBridge.from(response).write(bytes) ? Int32(FORKLIFT_OK) : Int32(FORKLIFT_FAILED)
        }
        api.response_flush = { response in
            guard let response else { return Int32(FORKLIFT_FAILED) }
            return ResponseBridge.from(response).flush() ? Int32(FORKLIFT_OK) : Int32(FORKLIFT_FAILED)
        }
        api.response_finish = { response in
            guard let response else { return Int32(FORKLIFT_FAILED) }
            return ResponseBridge.from(response).finish() ? Int32(FORKLIFT_OK) : Int32(FORKLIFT_FAILED)
        }
        api.register_read_only_region = { api, start, length, label in
            guard let api, let start, let context = api.pointee.host_context else { return Int32(FORKLIFT_FAILED) }
            let plugin = Unmanaged<PluginInstance>.fromOpaque(context).takeUnretainedValue()
            let name = "plugin \(plugin.settings.name) (\(label.map { String(cString: $0) } ?? "unnamed region"))"
            return forklift_fault_region_add(start, length, name) == 0 ? Int32(FORKLIFT_OK) : Int32(FORKLIFT_FAILED)
        }
        api.shared_data_open = { api, key, format, rootLength, capacity, label, data, failure in
            guard let api, let key, let data, let context = api.pointee.host_context else { return Int32(FORKLIFT_FAILED) }
            let plugin = Unmanaged<PluginInstance>.fromOpaque(context).takeUnretainedValue()
            guard let provider = SharedDataProviders.current else {
                return HostAPI.fail(failure, "keyed shared data can only be opened during preload, in the host")
            }
            do {
                data.pointee = try provider.open(for: plugin, key: String(cString: key), format: format, rootLength: rootLength, capacity: capacity,
                                                 label: label.map { String(cString: $0) } ?? "data")
                return Int32(FORKLIFT_OK)
            } catch {
                return HostAPI.fail(failure, "\(error)")
            }
        }
        api.shared_data_seal = { api, data, root, rootLength, used, failure in
            guard let api, let data, let context = api.pointee.host_context else { return Int32(FORKLIFT_FAILED) }
            let plugin = Unmanaged<PluginInstance>.fromOpaque(context).takeUnretainedValue()
            guard let provider = SharedDataProviders.current else {
                return HostAPI.fail(failure, "keyed shared data can only be sealed during preload, in the host")
            }
            do {
                try provider.seal(for: plugin, &data.pointee, root: UnsafeRawBufferPointer(start: root, count: root == nil ? 0 : rootLength), used: used)
                return Int32(FORKLIFT_OK)
            } catch {
                return HostAPI.fail(failure, "\(error)")
            }
        }
        return api
    }

    /// Writes `message` into the plugin's error buffer, cut to fit, and returns FORKLIFT_FAILED.
    static func fail(_ error: UnsafeMutablePointer<forklift_error>?, _ message: String) -> Int32 {
        if let error {
            withUnsafeMutableBytes(of: &error.pointee.message) { buffer in
                let bytes = Array(message.utf8.prefix(buffer.count - 1))
                buffer.copyBytes(from: bytes)
                buffer[bytes.count] = 0
            }
        }
        return Int32(FORKLIFT_FAILED)
    }

    static func logLevel(_ level: Int32) -> Logger.Level {
        switch level {
        case Int32(FORKLIFT_LOG_DEBUG): .debug
        case Int32(FORKLIFT_LOG_INFO): .info
        case Int32(FORKLIFT_LOG_NOTICE): .notice
        case Int32(FORKLIFT_LOG_WARNING): .warning
        default: .error
        }
    }
}
