// TLS over a connected non-blocking socket, with OpenSSL 3: the handshake within the connect deadline, reads and
// writes that say what they wait for (the connection polls), and failures in words a person can act on. No key
// material and no password ever reaches a message.
import COpenSSL
import Glibc
import HammerCore

/// The handle's TLS settings, loaded once: trusted CAs, client certificate, versions. Shared by its connections.
final class TLSContext {
    let ctx: OpaquePointer
    let options: TLSOptions

    private init(_ ctx: OpaquePointer, _ options: TLSOptions) {
        self.ctx = ctx
        self.options = options
    }

    deinit { SSL_CTX_free(ctx) }

    /// The BIO method that writes with MSG_NOSIGNAL, made once per process.
    static let bioMethod: OpaquePointer? = hammer_bio_method_new()

    static func make(_ o: TLSOptions) -> Result<TLSContext, Failure> {
        guard let method = TLS_client_method(), let ctx = SSL_CTX_new(method) else {
            return .failure(Failure(.nomem, "TLS: cannot create an OpenSSL context: \(TLSContext.reason())"))
        }
        let c = TLSContext(ctx, o)
        hammer_ssl_ctx_setup(ctx)
        if hammer_ssl_ctx_set_min_version(ctx, o.minVersion == .tls13 ? TLS1_3_VERSION : TLS1_2_VERSION) != 1 {
            return .failure(Failure(.invalid, "TLS: cannot set the minimum version: \(TLSContext.reason())"))
        }
        if o.verifyPeer {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            if o.caFile != nil || o.caPath != nil {
                ERR_clear_error()
                if SSL_CTX_load_verify_locations(ctx, o.caFile, o.caPath) != 1 {
                    let which = o.caFile.map { "ssl_ca_certs \($0)" } ?? "ssl_ca_path \(o.caPath ?? "")"
                    return .failure(Failure(.invalid, "TLS: cannot load the CA certificates of \(which): \(TLSContext.reason())"))
                }
            } else if SSL_CTX_set_default_verify_paths(ctx) != 1 {
                return .failure(Failure(.invalid, "TLS: cannot load the system's trust store: \(TLSContext.reason())"))
            }
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        }
        if o.certFile == nil { hammer_ssl_ctx_note_cert_requests(ctx) }
        if let cert = o.certFile {
            ERR_clear_error()
            if SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 {
                return .failure(Failure(.invalid, "TLS: cannot load ssl_certfile \(cert): \(TLSContext.reason())"))
            }
            let key = o.keyFile ?? cert
            if SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 {
                if hammer_err_reason(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH {
                    ERR_clear_error()
                    return .failure(Failure(.invalid, "TLS: the private key of \(key) does not match the certificate of ssl_certfile \(cert)"))
                }
                return .failure(Failure(.invalid, "TLS: cannot load the private key of \(o.keyFile == nil ? "ssl_certfile" : "ssl_keyfile") \(key) (a PEM key without a passphrase): \(TLSContext.reason())"))
            }
            if SSL_CTX_check_private_key(ctx) != 1 {
                return .failure(Failure(.invalid, "TLS: the private key does not match the certificate of ssl_certfile \(cert)"))
            }
        }
        return .success(c)
    }

    /// OpenSSL's reason for the thread's latest error (its text, with no data of the caller in it), and clears them.
    static func reason() -> String {
        let e = ERR_peek_last_error()
        ERR_clear_error()
        guard e != 0, let r = ERR_reason_error_string(e) else { return "unknown error" }
        return String(cString: r)
    }
}

final class TLSTransport: Transport {
    private(set) var fd: Int32
    private var ssl: OpaquePointer?

    private init(fd: Int32, ssl: OpaquePointer) {
        self.fd = fd
        self.ssl = ssl
    }

    deinit { close() }

    /// Runs the TLS handshake on the connected socket `fd` (which the transport then owns) by `deadlineUs`.
    /// `host` is the URL's host: the name sent (SNI) and verified unless ssl_server_name says another.
    static func handshake(fd: Int32, _ context: TLSContext, host: String, where place: String,
                          until deadlineUs: Int64) -> Result<TLSTransport, Failure> {
        let o = context.options
        guard let method = TLSContext.bioMethod, let ssl = SSL_new(context.ctx) else {
            Glibc.close(fd)
            return .failure(Failure(.nomem, "TLS: cannot create a session"))
        }
        let t = TLSTransport(fd: fd, ssl: ssl)
        guard let bio = hammer_bio_new(method, fd) else { return .failure(Failure(.nomem, "TLS: cannot create a BIO")) }
        SSL_set_bio(ssl, bio, bio)
        var a6 = in6_addr()
        let isIP = inet_pton(AF_INET, host, &a6) == 1 || inet_pton(AF_INET6, host, &a6) == 1
        let name = o.serverName ?? host
        if o.serverName != nil || !isIP { _ = hammer_ssl_set_sni(ssl, name) }
        if o.verifyPeer && o.checkHostname {
            SSL_set_hostflags(ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
            let ok = o.serverName == nil && isIP
                ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
                : SSL_set1_host(ssl, name)
            if ok != 1 { return .failure(Failure(.invalid, "TLS: cannot verify against the name '\(name)'")) }
        }
        while true {
            ERR_clear_error()
            let r = SSL_connect(ssl)
            if r == 1 { return .success(t) }
            let e = errno
            let w: Int32
            switch SSL_get_error(ssl, r) {
            case SSL_ERROR_WANT_READ: w = Socket.wait(fd, Int16(POLLIN), until: deadlineUs)
            case SSL_ERROR_WANT_WRITE: w = Socket.wait(fd, Int16(POLLOUT), until: deadlineUs)
            case let kind: return .failure(t.handshakeFailure(kind, errno: e, name: name, place))
            }
            if w == ETIMEDOUT {
                return .failure(Failure(.timeout, "TLS handshake with \(place) timed out: no TLS answer "
                                        + "(a plaintext port needs redis://, or the server is slow to answer)"))
            }
            if w != 0 { return .failure(Failure(.connect, "TLS handshake with \(place): \(String(cString: strerror(w)))")) }
        }
    }

    private func handshakeFailure(_ kind: Int32, errno e: Int32, name: String, _ place: String) -> Failure {
        guard let ssl else { return Failure(.connect, "TLS handshake with \(place) failed") }
        let verify = SSL_get_verify_result(ssl)
        if verify != X509_V_OK {
            let why = String(cString: X509_verify_cert_error_string(verify))
            ERR_clear_error()
            if verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH {
                var names = [CChar](repeating: 0, count: 512)
                hammer_ssl_peer_names(ssl, &names, names.count)
                let list = String(decoding: names.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                return Failure(.connect, "TLS with \(place): \(why): the certificate is for \(list), not '\(name)' "
                               + "(connect by a name it carries, set ssl_server_name, or ssl_check_hostname=false to check the chain only)")
            }
            return Failure(.connect, "TLS with \(place): certificate verify failed: \(why) "
                           + "(ssl_ca_certs or ssl_ca_path must name the CA that signed the server's certificate)")
        }
        let err = ERR_peek_last_error()
        let reason = TLSContext.reason()
        if kind == SSL_ERROR_SYSCALL || kind == SSL_ERROR_ZERO_RETURN || err == 0 {
            let how = e == 0 || kind == SSL_ERROR_ZERO_RETURN ? "closed the connection" : String(cString: strerror(e))
            return Failure(.connect, "TLS handshake with \(place) failed: the server \(how) (is it a TLS port? a plaintext port needs redis://)")
        }
        switch hammer_err_reason(err) {
        case SSL_R_WRONG_VERSION_NUMBER, SSL_R_PACKET_LENGTH_TOO_LONG, SSL_R_RECORD_LENGTH_MISMATCH,
             SSL_R_UNEXPECTED_MESSAGE, SSL_R_HTTP_REQUEST:
            return Failure(.connect, "TLS handshake with \(place) failed: \(reason): the server does not answer in TLS (a plaintext port needs redis://)")
        case SSL_R_UNSUPPORTED_PROTOCOL, SSL_R_NO_PROTOCOLS_AVAILABLE, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
            return Failure(.connect, "TLS handshake with \(place) failed: \(reason): no TLS version both sides accept (ssl_min_version)")
        default:
            return Failure(.connect, "TLS handshake with \(place) failed: \(reason)")
        }
    }

    func read(_ into: UnsafeMutableRawPointer, _ count: Int) -> IO {
        guard let ssl else { return .failed(EBADF, nil) }
        ERR_clear_error()
        let n = SSL_read(ssl, into, Int32(clamping: count))
        if n > 0 {
            answered = true
            return .done(Int(n))
        }
        return outcome(ssl, n, errno)
    }

    /// The server has sent data since the handshake: a close is no longer a refusal of the session.
    private var answered = false

    func write(_ from: UnsafeRawPointer, _ count: Int) -> IO {
        guard let ssl else { return .failed(EBADF, nil) }
        ERR_clear_error()
        let n = SSL_write(ssl, from, Int32(clamping: count))
        if n > 0 { return .done(Int(n)) }
        return outcome(ssl, n, errno)
    }

    private func outcome(_ ssl: OpaquePointer, _ n: Int32, _ e: Int32) -> IO {
        let kind = SSL_get_error(ssl, n)
        if kind == SSL_ERROR_WANT_READ { return .wantRead }
        if kind == SSL_ERROR_WANT_WRITE { return .wantWrite }
        let closed = kind == SSL_ERROR_ZERO_RETURN || (kind == SSL_ERROR_SYSCALL && (e == 0 || e == ECONNRESET || e == EPIPE))
        if closed && !answered && hammer_ssl_cert_requested(ssl) != 0 {
            ERR_clear_error()
            return .failed(e == 0 ? ECONNRESET : e, "TLS: the server closed the session after asking for a client "
                           + "certificate, and none is configured (ssl_certfile, ssl_keyfile)")
        }
        switch kind {
        case SSL_ERROR_ZERO_RETURN: return .eof
        case SSL_ERROR_SYSCALL:
            ERR_clear_error()
            return e == 0 ? .eof : .failed(e, nil)
        default:
            let err = ERR_peek_last_error()
            let reason = TLSContext.reason()
            if hammer_err_reason(err) == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED {
                return .failed(EPROTO, "TLS: the server requires a client certificate (ssl_certfile, ssl_keyfile)")
            }
            return .failed(EPROTO, "TLS: \(reason)")
        }
    }

    /// Bytes read from the socket that OpenSSL holds (decrypted, or records read ahead), which poll() cannot see.
    var hasBuffered: Bool { ssl.map { SSL_has_pending($0) == 1 } ?? false }

    func close() {
        if let ssl {
            // close_notify, if the socket takes it now; never waits for the server's.
            ERR_clear_error()
            SSL_shutdown(ssl)
            ERR_clear_error()
            SSL_free(ssl)
        }
        ssl = nil
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    func abandon() {
        if let ssl {
            SSL_set_quiet_shutdown(ssl, 1)
            SSL_free(ssl)   // frees memory only: SSL_free sends nothing
        }
        ssl = nil
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}
