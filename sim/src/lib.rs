//! Simulated county department systems for the demo, the tests and the benchmarks.
//!
//! One synthetic [`Population`] (deterministic from a seed, clearly made up) is served by
//! three HTTP systems, each with its own API style, as real departments have:
//! household registration 户籍 ([`hukou`]), social insurance 社保 ([`shebao`]) and
//! births 计生 ([`jisheng`]). Each can be told to misbehave ([`Faults`]) at run time.
//! A fourth department, civil affairs 民政 ([`minzheng`]), has no API: it shares
//! through a front database (前置库), a SQLite file written from the same population,
//! or the same tables in a MariaDB or PostgreSQL server ([`front_servers`]).
//!
//! This crate root owns starting and stopping the servers; the data is in [`population`],
//! the wire formats in the department modules, misbehaviour in [`faults`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

mod codes;
mod dates;
mod families;
pub mod front_servers;
#[cfg(test)]
mod fault_tests;
pub mod faults;
mod generate;
pub mod hukou;
pub mod jisheng;
pub mod minzheng;
#[cfg(test)]
mod minzheng_tests;
mod names;
pub mod population;
#[cfg(test)]
mod population_tests;
mod records;
mod respond;
pub mod shebao;
#[cfg(test)]
mod testing;

pub use faults::{FaultHandle, Faults, FaultsError, Rendezvous};
pub use population::{
    BankAccount, BirthRegistration, ChildRecord, Fertility, Gender, Household, HukouType,
    InsuranceRecord, InsuranceStatus, MaritalStatus, Person, PersonRef, Population, Relation,
    ResidentStatus, SampleKind, Scheme, SingleChildCertificate, SocialInsurance, Township, Village,
};

/// How long a stopping server waits for in-flight requests (a hanging one never ends).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// One of the three simulated departments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Department {
    /// 县公安局 户籍: household registration.
    Hukou,
    /// 县人社局 社保: social insurance.
    Shebao,
    /// 县卫健委 计生: family planning and births.
    Jisheng,
}

impl Department {
    /// Every department, in a fixed order.
    pub const ALL: [Department; 3] = [Department::Hukou, Department::Shebao, Department::Jisheng];

    /// A short ASCII id: "hukou", "shebao", "jisheng".
    pub fn id(self) -> &'static str {
        match self {
            Self::Hukou => "hukou",
            Self::Shebao => "shebao",
            Self::Jisheng => "jisheng",
        }
    }

    /// The department and system, in Chinese.
    /// The department whose [`Department::id`] this is.
    pub fn from_id(id: &str) -> Option<Department> {
        Department::ALL.into_iter().find(|d| d.id() == id)
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            Self::Hukou => "县公安局 户籍",
            Self::Shebao => "县人社局 社保",
            Self::Jisheng => "县卫健委 计生",
        }
    }
}

/// The routes of one department's system (data endpoints and `/__sim/faults`).
/// Each request's `X-Request-Id` (the gateway request it serves) and `traceparent`
/// (the trace it is part of) are kept as the server's last seen, so tests can check
/// a caller passes them on.
pub fn router(department: Department, population: Arc<Population>, faults: FaultHandle) -> Router {
    let seen = faults.clone();
    let routes = match department {
        Department::Hukou => hukou::router(population, faults),
        Department::Shebao => shebao::router(population, faults),
        Department::Jisheng => jisheng::router(population, faults),
    };
    routes.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let seen = seen.clone();
            async move {
                if let Some(id) = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                {
                    seen.saw_request_id(id);
                }
                if let Some(parent) = request
                    .headers()
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                {
                    seen.saw_traceparent(parent);
                }
                next.run(request).await
            }
        },
    ))
}

/// A running simulated system. Dropping it leaves the server running until the
/// runtime ends; call [`SimServer::shutdown`] to stop it.
#[derive(Debug)]
pub struct SimServer {
    pub department: Department,
    pub addr: SocketAddr,
    /// Changes this server's faults in process (the same as `PUT /__sim/faults`).
    pub faults: FaultHandle,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SimServer {
    /// "http://IP:PORT", without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Data requests this server has received since it started.
    pub fn requests(&self) -> u64 {
        self.faults.received()
    }

    /// Stops accepting connections and returns once the listener is closed and the
    /// requests in flight are done (or a short grace period has passed).
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// Serves `department`'s system on an already bound listener, with initial `faults`.
pub async fn spawn(
    department: Department,
    population: Arc<Population>,
    listener: TcpListener,
    faults: Faults,
) -> std::io::Result<SimServer> {
    let addr = listener.local_addr()?;
    let handle = FaultHandle::new(faults);
    let app = router(department, population, handle.clone());
    let (stop, stopped) = watch::channel(false);
    let graceful = stop_signal(stopped.clone());
    let deadline = async move {
        stop_signal(stopped).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(graceful);
        tokio::select! {
            result = serve => {
                if let Err(err) = result {
                    tracing::warn!(department = department.id(), %err, "simulated system stopped");
                }
            }
            () = deadline => {}
        }
    });
    Ok(SimServer {
        department,
        addr,
        faults: handle,
        stop,
        task,
    })
}

/// Starts all three systems on `ip`, each on a free port, with no faults.
pub async fn spawn_all(population: Arc<Population>, ip: IpAddr) -> std::io::Result<Vec<SimServer>> {
    let mut servers = Vec::with_capacity(Department::ALL.len());
    for department in Department::ALL {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
        servers.push(spawn(department, population.clone(), listener, Faults::default()).await?);
    }
    Ok(servers)
}

/// Completes once `shutdown` was called; never if the [`SimServer`] was dropped.
async fn stop_signal(mut stopped: watch::Receiver<bool>) {
    if stopped.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}
