//! The errors of the verbs layer. Each names the device, port, GID index or QP
//! it concerns, the errno where there is one, and the likely fix.

use std::io;

/// An error from device discovery, resource setup or the post/poll path.
#[derive(Debug, thiserror::Error)]
pub enum VerbsError {
    /// `ibv_get_device_list` failed: usually a kernel without RDMA (ENOSYS).
    #[error(
        "this kernel offers no RDMA (ibv_get_device_list: {cause}); load rdma_rxe \
         (`modprobe rdma_rxe && rdma link add rxe0 type rxe netdev <if>`), or run inside the \
         SoftRoCE VM: tests/softroce/vm.sh infab ..."
    )]
    NoRdmaKernel {
        /// The errno of the call.
        cause: io::Error,
    },
    /// The device list is empty.
    #[error(
        "no RDMA device found; load rdma_rxe and run `rdma link add rxe0 type rxe netdev <if>`, \
         or check `ibv_devices` and the provider packages (ibverbs-providers)"
    )]
    NoDevice,
    /// Several devices exist and none was chosen.
    #[error("{count} RDMA devices present ({present}); choose one with -d NAME|NETDEV|IP")]
    AmbiguousDevice {
        /// How many devices there are.
        count: usize,
        /// Their names, comma separated.
        present: String,
    },
    /// No device matches the selector.
    #[error("no RDMA device matches '{wanted}' (devices: {present}); pass a device name, its netdev or one of its IP addresses with -d")]
    DeviceNotFound {
        /// What the user asked for.
        wanted: String,
        /// The devices present, with their netdevs and addresses.
        present: String,
    },
    /// A verbs call failed during setup.
    #[error("{call} on {device} failed: {cause}{hint}")]
    Call {
        /// The device.
        device: String,
        /// The verbs call that failed.
        call: &'static str,
        /// The errno.
        cause: io::Error,
        /// A hint at the fix, starting with "; " (may be empty).
        hint: &'static str,
    },
    /// The port is not ACTIVE.
    #[error("{device} port {port} is {state}, not ACTIVE; bring the link up (`ip link set <netdev> up`, check `rdma link`)")]
    PortNotActive {
        /// The device.
        device: String,
        /// The port number.
        port: u8,
        /// The state seen.
        state: String,
    },
    /// No suitable GID.
    #[error(
        "{device} port {port}: {detail}; list the GID table with `infab devices` and pass -x INDEX"
    )]
    NoGid {
        /// The device.
        device: String,
        /// The port number.
        port: u8,
        /// What was looked for.
        detail: String,
    },
    /// A requested resource exceeds a device limit.
    #[error("{what} = {requested} exceeds the limit {limit} of {device}; lower it")]
    Limit {
        /// The device.
        device: String,
        /// The limit's name (e.g. `max_qp_wr`).
        what: &'static str,
        /// The requested value.
        requested: u64,
        /// The device's limit.
        limit: u64,
    },
    /// Host memory could not be allocated.
    #[error("cannot allocate {bytes} bytes of {kind} memory: {cause}{hint}")]
    Alloc {
        /// The size asked for.
        bytes: usize,
        /// "host" or "huge-page".
        kind: &'static str,
        /// The errno.
        cause: io::Error,
        /// A hint at the fix.
        hint: &'static str,
    },
    /// A QP state transition failed.
    #[error("QP {qpn} on {device}: transition to {state} failed: {detail}")]
    ModifyQp {
        /// The device.
        device: String,
        /// The local QP number.
        qpn: u32,
        /// The target state.
        state: &'static str,
        /// sideway's description (names the states and missing attribute masks).
        detail: String,
    },
    /// `ibv_post_send` / `ibv_post_recv` failed.
    #[error("posting to QP {qpn} failed: {cause}{hint}")]
    Post {
        /// The local QP number.
        qpn: u32,
        /// The errno.
        cause: io::Error,
        /// A hint (queue full, QP in error state).
        hint: &'static str,
    },
    /// The CUDA driver failed (loading, a GPU, an allocation or a copy).
    #[error(transparent)]
    Cuda(#[from] super::cuda::CudaError),
    /// The NIC cannot register GPU memory by any path.
    #[error("{device} cannot register GPU memory of {gpu}: {detail}; {fix}")]
    GpuRegistration {
        /// The RDMA device.
        device: String,
        /// The GPU.
        gpu: String,
        /// What each path answered.
        detail: String,
        /// How to get a path.
        fix: &'static str,
    },
    /// A CPU access the buffer's memory cannot serve.
    #[error("{what} needs host memory, but the buffer is in {memory}; {fix}")]
    NotHostMemory {
        /// The access.
        what: &'static str,
        /// The buffer's memory.
        memory: String,
        /// The alternative.
        fix: &'static str,
    },
    /// `ibv_poll_cq` failed.
    #[error("polling the completion queue failed (ibv_poll_cq returned {ret}); the device may have been removed")]
    Poll {
        /// The negative return value.
        ret: i32,
    },
}

impl VerbsError {
    /// A setup call failure with no particular hint.
    pub(crate) fn call(device: &str, call: &'static str, cause: io::Error) -> Self {
        VerbsError::Call {
            device: device.to_string(),
            call,
            cause,
            hint: "",
        }
    }
}
