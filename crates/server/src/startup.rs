//! Building and running the HTTP server.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use log::{info, warn};
use meterhook_store::Store;

use crate::auth::{ApiToken, UiPassword};
use crate::config::{ConfigError, Settings};
use crate::metrics::Metrics;
use crate::routes::api;
use crate::routes::{health, metrics, ui, webhook};
use crate::state::{AppState, BodyLimits};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is wrong or missing.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] meterhook_store::StoreError),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// A thread the service needs could not be started.
    #[error("cannot start the {what}: {source}")]
    Threads {
        /// Which threads.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// A bound, not yet running, meterhook server.
pub struct Application {
    port: u16,
    server: Server,
    ingest: meterhook_ingest::Ingest,
    background: Background,
}

/// The server's own periodic work: the database gauges and the summary of refused requests.
struct Background {
    state: web::Data<AppState>,
    metrics_every: Duration,
}

/// How often refused and unsigned requests are summarised in the log.
pub const REJECTIONS_EVERY: Duration = Duration::from_secs(10);

impl Background {
    /// Starts both tasks on the current runtime; they end when `stop` changes.
    fn start(self, stop: &tokio::sync::watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let state = self.state.clone();
        let gauges = every(self.metrics_every, stop.clone(), move || {
            let state = state.clone();
            async move {
                let refreshed = tokio::task::spawn_blocking(move || {
                    state
                        .metrics
                        .refresh_backlog(&state.store, state.spool.as_ref());
                })
                .await;
                if refreshed.is_err() {
                    log::error!(
                        "metrics: the refresh panicked; it runs again at the next interval"
                    );
                }
            }
        });
        let rejections = self.state.rejections.clone();
        let over = format!(
            "in the last {}",
            humantime::format_duration(REJECTIONS_EVERY)
        );
        let summary = every(REJECTIONS_EVERY, stop.clone(), move || {
            rejections.log(&over);
            std::future::ready(())
        });
        vec![gauges, summary]
    }
}

/// Runs `tick` now and then every `interval` (never two at once) until `stop` changes.
fn every<F, Fut>(
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut tick: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    actix_web::rt::spawn(async move {
        let mut timer = tokio::time::interval(interval);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = timer.tick() => tick().await,
                _ = stop.changed() => break,
            }
        }
    })
}

impl Application {
    /// Opens the store (applying migrations) and binds the listen address (`:0` picks a port).
    ///
    /// With PostgreSQL and a spool, an unreachable database does not stop the start: events are
    /// spooled until it answers, and migrations run then.
    pub fn build(settings: &Settings) -> Result<Application, StartError> {
        // Before the database: a start without a token must not leave a new database behind.
        settings.signing_keys()?;
        settings.refuse_weak_secrets()?;
        let url = settings.database_url.expose();
        // A long-running writer: SQLite checkpoints on a thread of their own, not in its commits.
        let options = meterhook_store::PoolOptions {
            background_checkpoints: true,
            ..settings.pool_options()
        };
        let store = match Store::open(url, &options) {
            Ok(store) => store,
            Err(e) if e.is_transient() && settings.spool_url().is_some() => {
                warn!(
                    "database unavailable at start ({e}); events go to the spool until it answers"
                );
                Store::open_lazy(url, &options)?
            }
            Err(e) => return Err(e.into()),
        };
        Application::build_with_store(settings, store)
    }

    /// Binds with an already opened store.
    pub fn build_with_store(settings: &Settings, store: Store) -> Result<Application, StartError> {
        let keys = settings.signing_keys()?;
        if settings.token_is_short() {
            warn!("SMARTCAR_MANAGEMENT_TOKEN is shorter than 16 bytes; check that it is the whole token");
        }
        settings.refuse_weak_secrets()?;
        let policy = settings.policy();
        let retry = settings.retry();
        let client_timeout = settings.client_timeout;
        let spool = match settings.spool_url() {
            Some(url) => {
                let spool = Store::open(&url, &meterhook_store::PoolOptions::default())?;
                info!("spool for database outages: {}", spool.url().redacted());
                Some(spool)
            }
            None => None,
        };
        let mut ingest_settings = meterhook_ingest::IngestOptions::new(&store, policy, retry);
        ingest_settings.intake = settings.intake();
        let retention = meterhook_ingest::Retention {
            events: settings.retention,
            signals: settings.signal_retention,
            sync_logs: settings.sync_log_retention,
        };
        ingest_settings.schedule.prune = (retention != meterhook_ingest::Retention::default())
            .then_some((retention, Duration::from_secs(3600)));
        if settings.writers > 0 {
            ingest_settings.writers = settings.writers;
        }
        ingest_settings.queue = settings.queue;
        ingest_settings.spool_max_events = settings.spool_max_events;
        // The readers' own pool: reads (API, metrics, readiness) never take a connection a
        // delivery is waiting for, however many of them arrive.
        let readers = store.with_own_pool(&settings.read_pool_options());
        let listener = TcpListener::bind(&settings.listen).map_err(|source| StartError::Bind {
            address: settings.listen.clone(),
            source,
        })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        info!(
            "meterhook listening on {} ({} database {}, {} signing key{})",
            listener
                .local_addr()
                .map_or_else(|_| settings.listen.clone(), |a| a.to_string()),
            store.backend(),
            store.url().redacted(),
            keys.len(),
            if keys.len() == 1 { "" } else { "s" }
        );
        let ingest = meterhook_ingest::Ingest::start(ingest_settings, store.clone(), spool.clone())
            .map_err(|source| StartError::Threads {
                what: "writer threads",
                source,
            })?;
        let metrics = std::sync::Arc::new(Metrics::default());
        metrics.set_spool_limit(if spool.is_some() {
            settings.spool_max_events
        } else {
            0
        });
        let app_state = AppState {
            pipeline: ingest.pipeline().clone(),
            store: readers,
            // Readiness and the spool gauge read the spool too: on their own pool as well, so
            // that a flood of /readyz during an outage never delays spooling.
            spool: spool
                .as_ref()
                .map(|s| s.with_own_pool(&settings.read_pool_options())),
            keys,
            ingest: ingest.submitter(),
            limits: BodyLimits {
                max_bytes: settings.body_limit,
                timeout: client_timeout,
            },
            metrics,
            rejections: std::sync::Arc::default(),
            api_token: settings
                .api_token
                .as_ref()
                .filter(|t| !t.expose().is_empty())
                .map(|t| ApiToken::new(t.expose())),
            ui_password: settings
                .ui_password
                .as_ref()
                .map(|p| UiPassword::new(p.expose())),
            failures: std::sync::Arc::default(),
        };
        let api_on = app_state.api_token.is_some();
        if api_on {
            info!("API on at /api/vehicles/{{vehicle_id}}/… and /api/smartcar-vehicles (bearer token)");
        }
        let ui_on = app_state.ui_password.is_some();
        if ui_on {
            info!("status pages on at /ui/ (HTTP Basic authentication)");
        }
        let state = web::Data::new(app_state);
        let background = Background {
            state: state.clone(),
            metrics_every: settings.metrics_interval,
        };
        let body_limit = settings.body_limit;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                // One payload limit for every extractor that reads a body; the routes read theirs
                // with `BodyLimits::read`, which adds the client timeout.
                .app_data(web::PayloadConfig::new(body_limit))
                .app_data(web::JsonConfig::default().limit(body_limit))
                .route("/api/smartcar/webhook", web::post().to(webhook::receive))
                .route("/healthz", web::get().to(health::healthz))
                .route("/readyz", web::get().to(health::readyz))
                .route("/metrics", web::get().to(metrics::metrics))
                .configure(|cfg| {
                    if api_on {
                        api::configure(cfg);
                    }
                    if ui_on {
                        ui::configure(cfg);
                    }
                })
                .default_service(web::to(|| async {
                    HttpResponse::NotFound().json(serde_json::json!({ "error": "not found" }))
                }))
        })
        .client_request_timeout(client_timeout)
        .client_disconnect_timeout(Duration::from_secs(2))
        // Per worker; beyond it connections wait in the listen backlog instead of each holding
        // buffers in the process. (`max_connection_rate` bounds TLS handshakes only: no TLS here.)
        .max_connections(settings.max_connections)
        .shutdown_timeout(30);
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartError::Bind {
                address: settings.listen.clone(),
                source,
            })?
            .run();
        Ok(Application {
            port,
            server,
            ingest,
            background,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped. SIGINT/SIGTERM stop it gracefully: no new connections, requests in
    /// flight are finished (up to 30 s), the writer commits what is queued, then the background
    /// passes finish and stop.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application {
            server,
            mut ingest,
            background,
            ..
        } = self;
        ingest.start_background();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // Only the counts: the state holds a submitter, which must go for the writers to end.
        let rejections = background.state.rejections.clone();
        let tasks = background.start(&stopped);
        let served = server.await;
        let _ = stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
        // What was refused since the last summary is not lost with the process.
        rejections.log("before stopping");
        info!("HTTP server stopped; finishing background work");
        // The server's handlers held the other submitters: the writers now drain and end.
        ingest.shutdown(Duration::from_secs(30)).await;
        info!("meterhook stopped");
        served
    }
}
