//! The one file that calls raw wgpu: adapter and device, limits and features, pipeline cache,
//! command recording (many dispatches per compute pass, one submission per forward step),
//! readback and device-loss handling. Everything above it speaks in [`Kernel`]s and buffers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::error::EngineError;
use crate::kernels::{self, Kernel};

/// What the rest of the engine needs to know about the adapter.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub shader_f16: bool,
    pub subgroups: bool,
    pub timestamps: bool,
    pub max_storage_binding_bytes: u64,
    pub max_buffer_bytes: u64,
}

/// A compiled kernel and the bind-group layout that goes with it.
pub struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    label: String,
}

/// The device, its queue and the caches built on them.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub limits: wgpu::Limits,
    pipelines: RefCell<HashMap<String, Rc<Pipeline>>>,
    /// The first uncaptured error or device loss; once set every call fails with it.
    fault: Arc<Mutex<Option<String>>>,
    /// Bytes of every storage buffer created so far (a model's footprint is the growth
    /// over its load).
    allocated: std::cell::Cell<u64>,
}

/// Storage-buffer usages every engine buffer gets: kernels read and write them, uploads and
/// readbacks copy them.
const STORAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_DST).union(wgpu::BufferUsages::COPY_SRC);

impl Gpu {
    /// Finds an adapter (high performance first) and opens a device with the largest storage
    /// bindings it allows, asking for `shader-f16` and subgroups where offered.
    pub async fn new() -> Result<Rc<Self>, EngineError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| EngineError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let offered = adapter.features();
        let wanted = wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY;
        let features = offered & wanted;
        let al = adapter.limits();
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: al.max_storage_buffer_binding_size,
            max_buffer_size: al.max_buffer_size,
            max_storage_buffers_per_shader_stage: al.max_storage_buffers_per_shader_stage.min(10),
            max_compute_workgroup_storage_size: al.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: al.max_compute_invocations_per_workgroup,
            max_compute_workgroup_size_x: al.max_compute_workgroup_size_x,
            ..wgpu::Limits::downlevel_defaults().using_resolution(al.clone())
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("qwglm"),
                required_features: features,
                required_limits: limits.clone(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
            })
            .await
            .map_err(|e| EngineError::NoAdapter(format!("request_device: {e}")))?;
        let fault = Arc::new(Mutex::new(None::<String>));
        let f = fault.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("wgpu: {e}");
            if let Ok(mut slot) = f.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }));
        let f = fault.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = f.lock() {
                slot.get_or_insert_with(|| format!("GPU device lost ({reason:?}): {message}"));
            }
        });
        let adapter = AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            max_storage_binding_bytes: limits.max_storage_buffer_binding_size as u64,
            max_buffer_bytes: limits.max_buffer_size,
        };
        Ok(Rc::new(Gpu {
            device,
            queue,
            adapter,
            limits,
            pipelines: RefCell::new(HashMap::new()),
            fault,
            allocated: std::cell::Cell::new(0),
        }))
    }

    /// Fails with the first asynchronous GPU error or device loss seen so far.
    pub fn check(&self) -> Result<(), EngineError> {
        match self.fault.lock().ok().and_then(|s| s.clone()) {
            Some(msg) => Err(EngineError::Gpu(msg)),
            None => Ok(()),
        }
    }

    /// Bytes of all storage buffers created on this device so far, freed ones included.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated.get()
    }

    /// A zeroed storage buffer of `bytes` (rounded up to 4).
    pub fn buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer, EngineError> {
        let size = bytes.max(4).div_ceil(4) * 4;
        if size > self.limits.max_buffer_size {
            return Err(EngineError::TooLarge {
                what: label.to_string(),
                bytes: size,
                limit: self.limits.max_buffer_size,
            });
        }
        self.allocated.set(self.allocated.get() + size);
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: STORAGE,
            mapped_at_creation: false,
        }))
    }

    /// A storage buffer holding `data` (padded with zeros to a multiple of 4 bytes).
    pub fn upload(&self, label: &str, data: &[u8]) -> Result<wgpu::Buffer, EngineError> {
        let buf = self.buffer(label, data.len() as u64)?;
        self.write(&buf, 0, data);
        Ok(buf)
    }

    /// Writes `data` at `offset` bytes (both padded to 4 bytes as the queue requires).
    pub fn write(&self, buf: &wgpu::Buffer, offset: u64, data: &[u8]) {
        if data.len().is_multiple_of(4) {
            self.queue.write_buffer(buf, offset, data);
        } else {
            let mut padded = data.to_vec();
            padded.resize(data.len().div_ceil(4) * 4, 0);
            self.queue.write_buffer(buf, offset, &padded);
        }
    }

    /// Hands the queued buffer writes to the GPU and, natively, waits until it has taken
    /// them, so their staging copies are freed (the browser's queue copies at once).
    pub fn flush_writes(&self) -> Result<(), EngineError> {
        self.queue.submit(std::iter::empty());
        #[cfg(not(target_arch = "wasm32"))]
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| EngineError::Gpu(format!("poll: {e}")))?;
        Ok(())
    }

    /// The pipeline for `kernel`, compiled once and cached by its specialisation key.
    pub fn pipeline(&self, kernel: &Kernel) -> Result<Rc<Pipeline>, EngineError> {
        let key = kernel.key();
        if let Some(p) = self.pipelines.borrow().get(&key) {
            return Ok(p.clone());
        }
        let source = kernels::source(kernel)?;
        #[cfg(not(target_arch = "wasm32"))]
        if std::env::var_os("QWGLM_DUMP_WGSL").is_some() {
            let path = std::env::temp_dir().join(format!("qwglm-{}.wgsl", key.replace(['/', ':', ' '], "_")));
            let _ = std::fs::write(&path, &source);
        }
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&key),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, writable) in kernel.bindings.iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: !writable },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(&key), entries: &entries });
        let pipeline_layout = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&key),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&key),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(kernel.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &[],
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        self.check().map_err(|e| EngineError::Shader { kernel: key.clone(), message: e.to_string() })?;
        let p = Rc::new(Pipeline { pipeline, layout, label: key.clone() });
        self.pipelines.borrow_mut().insert(key, p.clone());
        Ok(p)
    }

    /// Starts recording one step's dispatches.
    pub fn recorder(&self) -> Recorder<'_> {
        Recorder { gpu: self, ops: Vec::new(), params: Vec::new() }
    }

    /// Reads `count` f32 values starting at element `offset` of `buf`.
    pub async fn read_f32(&self, buf: &wgpu::Buffer, offset: u64, count: usize) -> Result<Vec<f32>, EngineError> {
        let bytes = self.read_bytes(buf, offset * 4, count as u64 * 4).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Copies `len` bytes at `offset` into a mappable buffer and waits for them.
    pub async fn read_bytes(&self, buf: &wgpu::Buffer, offset: u64, len: u64) -> Result<Vec<u8>, EngineError> {
        self.check()?;
        let size = len.div_ceil(4) * 4;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: size.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
        enc.copy_buffer_to_buffer(buf, offset, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| EngineError::Gpu(format!("poll: {e}")))?;
        let mapped = rx.await.map_err(|_| EngineError::Gpu("readback was cancelled".into()))?;
        mapped.map_err(|e| {
            self.check()
                .err()
                .map(|f| f.to_string())
                .map_or_else(|| EngineError::Gpu(format!("map: {e}")), EngineError::Gpu)
        })?;
        let data =
            staging.slice(..).get_mapped_range().map_err(|e| EngineError::Gpu(format!("mapped range: {e}")))?.to_vec();
        staging.unmap();
        self.check()?;
        Ok(data[..len as usize].to_vec())
    }
}

/// What a dispatch binds: its pipeline, where its params sit and its storage buffers. Two
/// steps with equal keys, dispatch by dispatch, can share bind groups.
#[derive(Clone)]
struct BindKey {
    pipeline: Rc<Pipeline>,
    params_offset: u64,
    buffers: Vec<wgpu::Buffer>,
}

impl PartialEq for BindKey {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.pipeline, &other.pipeline)
            && self.params_offset == other.params_offset
            && self.buffers == other.buffers
    }
}

struct Dispatch {
    key: BindKey,
    params_size: u64,
    groups: [u32; 3],
}

/// Records dispatches for one step and submits them together: one params buffer, one compute
/// pass, one submission.
pub struct Recorder<'g> {
    gpu: &'g Gpu,
    ops: Vec<Dispatch>,
    params: Vec<u8>,
}

impl Recorder<'_> {
    /// Adds a dispatch of `kernel` over `groups` workgroups with uniform `params` at binding 0 and
    /// `buffers` at bindings 1.. in the order of the kernel's binding table.
    pub fn dispatch<P: bytemuck::Pod>(
        &mut self,
        kernel: &Kernel,
        params: &P,
        buffers: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> Result<(), EngineError> {
        if buffers.len() != kernel.bindings.len() {
            return Err(EngineError::Op {
                op: kernel.entry.to_string(),
                message: format!("{} buffers given, {} bound", buffers.len(), kernel.bindings.len()),
            });
        }
        let max = self.gpu.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(EngineError::Op {
                op: kernel.entry.to_string(),
                message: format!("grid {groups:?} exceeds {max}"),
            });
        }
        if groups.contains(&0) {
            return Ok(());
        }
        let pipeline = self.gpu.pipeline(kernel)?;
        let align = self.gpu.limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        let offset = self.params.len().div_ceil(align) * align;
        self.params.resize(offset, 0);
        self.params.extend_from_slice(bytemuck::bytes_of(params));
        let size = std::mem::size_of::<P>().div_ceil(16) * 16;
        self.params.resize(offset + size, 0);
        self.ops.push(Dispatch {
            key: BindKey {
                pipeline,
                params_offset: offset as u64,
                buffers: buffers.iter().map(|b| (*b).clone()).collect(),
            },
            params_size: size as u64,
            groups,
        });
        Ok(())
    }

    /// Encodes every recorded dispatch into one compute pass and submits it.
    pub fn submit(self) -> Result<(), EngineError> {
        self.submit_cached(&mut StepCache::default())
    }

    /// As [`submit`](Self::submit), reusing the params buffer and bind groups of `cache` when
    /// this step binds the same pipelines and buffers in the same order as the last one (every
    /// decode step does); only the params are rewritten then.
    pub fn submit_cached(self, cache: &mut StepCache) -> Result<(), EngineError> {
        self.gpu.check()?;
        if self.ops.is_empty() {
            return Ok(());
        }
        let device = &self.gpu.device;
        let same = cache.params.as_ref().is_some_and(|p| p.size() == self.params.len() as u64)
            && cache.keys.len() == self.ops.len()
            && cache.keys.iter().zip(&self.ops).all(|(k, op)| *k == op.key);
        if !same {
            let params = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("params"),
                size: self.params.len() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            cache.groups = self
                .ops
                .iter()
                .map(|op| {
                    let k = &op.key;
                    let mut entries = vec![wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &params,
                            offset: k.params_offset,
                            size: wgpu::BufferSize::new(op.params_size),
                        }),
                    }];
                    for (i, b) in k.buffers.iter().enumerate() {
                        entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() });
                    }
                    device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(&k.pipeline.label),
                        layout: &k.pipeline.layout,
                        entries: &entries,
                    })
                })
                .collect();
            cache.keys = self.ops.iter().map(|op| op.key.clone()).collect();
            cache.params = Some(params);
        }
        let Some(params) = cache.params.as_ref() else { return Ok(()) };
        self.gpu.queue.write_buffer(params, 0, &self.params);
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step") });
        {
            let mut pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("step"), timestamp_writes: None });
            for (op, bg) in self.ops.iter().zip(&cache.groups) {
                pass.set_pipeline(&op.key.pipeline.pipeline);
                pass.set_bind_group(0, bg, &[]);
                pass.dispatch_workgroups(op.groups[0], op.groups[1], op.groups[2]);
            }
        }
        self.gpu.queue.submit([enc.finish()]);
        self.gpu.check()
    }
}

/// Bind groups and params buffer of the last submitted step, for reuse by the next one.
#[derive(Default)]
pub struct StepCache {
    /// What each dispatch of that step bound (holding its pipeline keeps the pointer unique).
    keys: Vec<BindKey>,
    params: Option<wgpu::Buffer>,
    groups: Vec<wgpu::BindGroup>,
}

/// Splits `n` workgroups into a grid whose x side stays within the per-dimension limit;
/// kernels recover the flat index as `wid.x + wid.y * nwg.x`.
pub fn grid(n: u32) -> [u32; 3] {
    const MAX_X: u32 = 65535;
    if n <= MAX_X {
        [n, 1, 1]
    } else {
        [MAX_X, n.div_ceil(MAX_X), 1]
    }
}

/// Milliseconds from an arbitrary origin, for timings (performance.now-like on both targets).
pub fn now_ms() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64() * 1000.0
    }
}
