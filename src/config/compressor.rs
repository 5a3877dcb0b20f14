//! The model of `envoy.filters.http.compressor` (`Compressor`, its compression library and
//! `CompressorPerRoute`), as read by `validate/compressor.rs`.

/// The compression library (`compressor_library.typed_config`) and its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressorLibrary {
    /// `envoy.extensions.compression.gzip.compressor.v3.Gzip`
    Gzip { level: u32, window_bits: u8, memory_level: u8, chunk_size: usize },
    /// `envoy.extensions.compression.brotli.compressor.v3.Brotli`
    Brotli {
        quality: u32,
        window_bits: u32,
        input_block_bits: u32,
        /// 0 generic, 1 text, 2 font (Envoy's DEFAULT is generic).
        mode: u8,
        disable_literal_context_modeling: bool,
        chunk_size: usize,
    },
    /// `envoy.extensions.compression.zstd.compressor.v3.Zstd`
    Zstd { level: i32, checksum: bool, strategy: u32, chunk_size: usize },
}

impl CompressorLibrary {
    /// The `content-encoding` it produces, which is also its stats prefix.
    pub fn encoding(&self) -> &'static str {
        match self {
            CompressorLibrary::Gzip { .. } => "gzip",
            CompressorLibrary::Brotli { .. } => "br",
            CompressorLibrary::Zstd { .. } => "zstd",
        }
    }

    /// The library's stats prefix (`...compressor.<name>.<this>.`).
    pub fn stats_name(&self) -> &'static str {
        match self {
            CompressorLibrary::Gzip { .. } => "gzip",
            CompressorLibrary::Brotli { .. } => "brotli",
            CompressorLibrary::Zstd { .. } => "zstd",
        }
    }
}

/// `envoy.extensions.filters.http.compressor.v3.Compressor`
#[derive(Debug, Clone, PartialEq)]
pub struct CompressorConfig {
    /// `compressor_library.name`: part of the stat names.
    pub library_name: String,
    pub library: CompressorLibrary,
    /// `response_direction_config.common_config.enabled` (or the deprecated `runtime_enabled`):
    /// its `runtime_key` over its `default_value`.
    pub enabled: crate::runtime::FlagKey,
    /// `min_content_length` (deprecated `content_length`); 30 when unset or 0.
    pub min_content_length: u64,
    /// `content_type` (deprecated top-level `content_type`), lowercased; empty is Envoy's list.
    pub content_types: Vec<String>,
    pub disable_on_etag_header: bool,
    pub remove_accept_encoding_header: bool,
    /// `response_direction_config.uncompressible_response_codes`
    pub uncompressible_response_codes: Vec<u16>,
    /// `choose_first`
    pub choose_first: bool,
    /// Whether `response_direction_config` is set: Envoy then names the response stats
    /// `response.*`.
    pub has_response_direction_config: bool,
    /// `request_direction_config.common_config`: request bodies compressed on their way
    /// upstream. `None` when unset (Envoy then never compresses requests).
    pub request: Option<RequestCompression>,
}

/// `request_direction_config.common_config` of a compressor.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestCompression {
    /// `enabled`: its `runtime_key` over its `default_value`.
    pub enabled: crate::runtime::FlagKey,
    pub min_content_length: u64,
    /// Lowercased; empty is Envoy's default list.
    pub content_types: Vec<String>,
}

/// `envoy.extensions.filters.http.compressor.v3.CompressorPerRoute`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressorPerRoute {
    /// `Some(false)` for `disabled: true`; `Some(true)` for `overrides.response_direction_config`
    /// (its presence enables response compression); `None` leaves the filter's own setting.
    pub enabled: Option<bool>,
    /// `overrides.response_direction_config.remove_accept_encoding_header`
    pub remove_accept_encoding_header: Option<bool>,
}

/// The decompression library (`decompressor_library.typed_config`) and its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecompressorLibrary {
    /// `envoy.extensions.compression.gzip.decompressor.v3.Gzip`
    Gzip { window_bits: u8, chunk_size: usize, max_inflate_ratio: u32 },
    /// `envoy.extensions.compression.brotli.decompressor.v3.Brotli`
    /// (`disable_ring_buffer_reallocation` has no counterpart in the Rust decoder, which
    /// sizes its ring buffer from the stream's window: it is refused.)
    Brotli { chunk_size: usize },
    /// `envoy.extensions.compression.zstd.decompressor.v3.Zstd` (without dictionaries)
    Zstd { chunk_size: usize },
}

impl DecompressorLibrary {
    /// The `content-encoding` it decodes.
    pub fn encoding(&self) -> &'static str {
        match self {
            DecompressorLibrary::Gzip { .. } => "gzip",
            DecompressorLibrary::Brotli { .. } => "br",
            DecompressorLibrary::Zstd { .. } => "zstd",
        }
    }

    /// The library's stats prefix (`...decompressor.<name>.<this>.`).
    pub fn stats_name(&self) -> &'static str {
        match self {
            DecompressorLibrary::Gzip { .. } => "gzip",
            DecompressorLibrary::Brotli { .. } => "brotli",
            DecompressorLibrary::Zstd { .. } => "zstd",
        }
    }

    pub fn chunk_size(&self) -> usize {
        match *self {
            DecompressorLibrary::Gzip { chunk_size, .. }
            | DecompressorLibrary::Brotli { chunk_size }
            | DecompressorLibrary::Zstd { chunk_size } => chunk_size,
        }
    }
}

/// A direction's `common_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecompressDirection {
    /// `enabled`: its `runtime_key` over its `default_value` (true when unset).
    pub enabled: crate::runtime::FlagKey,
    pub ignore_no_transform_header: bool,
}

/// `envoy.extensions.filters.http.decompressor.v3.Decompressor`
#[derive(Debug, Clone, PartialEq)]
pub struct DecompressorConfig {
    /// `decompressor_library.name`: part of the stat and trailer names.
    pub library_name: String,
    pub library: DecompressorLibrary,
    pub request: DecompressDirection,
    pub response: DecompressDirection,
    /// `request_direction_config.advertise_accept_encoding` (true when unset).
    pub advertise_accept_encoding: bool,
}
