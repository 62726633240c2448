using GoblinAspire.TrainingWorker;

return await TrainingWorkerApp.Build(args).RunServiceAsync();
