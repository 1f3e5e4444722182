//! KV: Range, Put, DeleteRange, Txn, Compact.

use gauntlet_api::etcdserverpb::{self as pb, kv_server::Kv};
use std::sync::atomic::Ordering;

use gauntlet_api::rpctypes;
use tonic::{Request, Response, Status};

use super::{status, Ctx};
use crate::state::{self, Op};

/// KV service.
#[derive(Debug, Clone)]
pub struct KvService(pub Ctx);

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let who = self.0.who(&request).await?;
        let req = request.into_inner();
        if !req.serializable {
            if self.0.node.status.is_learner.load(Ordering::Relaxed) {
                return Err(status(rpctypes::NOT_SUPPORTED_FOR_LEARNER));
            }
            self.0.node.read_index().await.map_err(status)?;
        }
        self.0.read(&who, &req).map(Response::new)
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let who = self.0.who(&request).await?;
        let a = self.0.write(who, Op::Put(request.into_inner())).await?;
        expect_response!(a, Put, self.0)
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let who = self.0.who(&request).await?;
        let a = self
            .0
            .write(who, Op::DeleteRange(request.into_inner()))
            .await?;
        expect_response!(a, DeleteRange, self.0)
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let who = self.0.who(&request).await?;
        let a = self.0.write(who, Op::Txn(request.into_inner())).await?;
        expect_response!(a, Txn, self.0)
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let who = self.0.who(&request).await?;
        let a = self
            .0
            .write(who, Op::Compaction(request.into_inner()))
            .await?;
        expect_response!(a, Compaction, self.0)
    }
}
